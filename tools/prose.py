"""Find numbers in a chapter's prose that an experiment produced but nobody glued.

A number that an experiment computes (an accuracy, a count of updates, a ratio,
a fitted exponent, a timing) must reach the text through myst-nb's glue: the
code calls ``dl_course.report.glue(name=value)`` and the markdown says
``{glue:text}`name:.3f```. Typed by hand, such a number drifts from the output
after the next change. This module flags candidates:

- every decimal number or percentage in the plain prose of a markdown cell that
  stands within a few words of an experiment word (accuracy, loss, updates,
  ratio, ...);
- every whole number right before a count noun (``28 dead units``, ``12 updates``)
  or after "factor of" (``loose by a factor of 4``).

Not prose, so never flagged: math (``$...$``, ``$$...$$``, ``\\begin..\\end``),
code spans and code fences, roles and directive markup (``{glue:text}`...```,
``{footcite}`...```), link targets, HTML comments. The convention that follows:
a *setting* chosen by the author (a learning rate, a margin, a score in a worked
example) is written as math, ``$\\eta = 0.1$``; a *result* is glued.

    python tools/prose.py chapters/*.ipynb    # list unglued numbers, exit 1 if any
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

#: Words that mark a sentence as reporting what an experiment measured.
EXPERIMENT_WORDS = (
    "accuracy accuracies loss losses error errors update updates mistake mistakes ratio ratios "
    "dead slope slopes exponent exponents factor faster slower seconds second ms speedup "
    "median mean average spread std deviation variance fraction percent measured measures "
    "reaches reached converges converged gap bound bounds dips dip peak peaks times "
    "nats bits correlation norm norms entropy agree agrees within score scores"
).split()
#: Nouns that make a whole number before them a measured count.
COUNT_NOUNS = (
    "updates mistakes errors dead misclassified passes iterations steps seeds runs failures"
).split()
#: How many words either side of a number are searched for an experiment word.
WINDOW = 6

_STRIP = [
    re.compile(r"<!--.*?-->", re.S),  # HTML comments
    # fenced code (no info, a language, or a code/math directive); other directives are prose
    re.compile(
        r"^(```+|~~~+)[ \t]*(?:[\w+-]*|\{(?:code|code-block|code-cell|math)\}.*)$.*?^\1",
        re.S | re.M,
    ),
    re.compile(r"^(?:```+|:::+)(?:\{[\w:-]+\})?", re.M),  # directive fences: {note}, {prf:proof}
    re.compile(r"\$\$.*?\$\$", re.S),  # display math
    re.compile(r"\\begin\{(\w+\*?)\}.*?\\end\{\1\}", re.S),  # LaTeX environments
    re.compile(r"(?<!\\)\$[^$\n]+?(?<!\\)\$"),  # inline math
    re.compile(r"\{[\w:.-]+\}`[^`]*`"),  # roles: {glue:text}`x:.2f`, {footcite}`key`
    re.compile(r"``[^`]+``|`[^`\n]+`"),  # code spans
    re.compile(r"\]\([^)]*\)"),  # link targets
    re.compile(r"^\([\w-]+\)=\s*$", re.M),  # MyST targets
    re.compile(r"^:\w[\w-]*:.*$", re.M),  # directive options
]
_NUMBER = re.compile(r"(?<![\w.,])(-?\d+(?:[.,]\d+)*(?:\.\d+)?)(\s?%)?(?![\w])")
_WORD = re.compile(r"[A-Za-z]+")
_GAP = r"(?:[ \t]+|[ \t]*\n[ \t]*)"  # spaces, or one line break
_FOLLOWING = re.compile(rf"{_GAP}([A-Za-z]+)(?:{_GAP}([A-Za-z]+))?")  # the next word or two
_FACTOR = re.compile(r"factor of\s+$", re.I)
_REFERENCE = re.compile(r"(chapter|chapters|section|sections|§|part|equation|eq\.|figure|step)\s*$", re.I)


def plain_prose(markdown: str) -> str:
    """The markdown with math, code, roles, link targets and comments blanked out."""
    for pattern in _STRIP:
        markdown = pattern.sub(lambda m: " " * len(m.group(0)), markdown)
    return markdown


def _words_near(text: str, start: int, end: int) -> list[str]:
    before = _WORD.findall(text[max(0, start - 80) : start])[-WINDOW:]
    after = _WORD.findall(text[end : end + 80])[:WINDOW]
    return [w.lower() for w in before + after]


def unglued_numbers(markdown: str) -> list[str]:
    """The numbers in ``markdown`` that look measured but are typed, each with its context."""
    text = plain_prose(markdown)
    found = []
    for match in _NUMBER.finditer(text):
        if _REFERENCE.search(text[max(0, match.start() - 12) : match.start()]):
            continue  # "section 2.3" names a place, not a measurement
        number, percent = match.group(1), match.group(2)
        decimal = "." in number or percent is not None
        following = _FOLLOWING.match(text, match.end())
        counted = bool(following) and any(
            (w or "").lower() in COUNT_NOUNS for w in following.groups()
        )
        counted = counted or bool(_FACTOR.search(text[max(0, match.start() - 12) : match.start()]))
        near = _words_near(text, match.start(), match.end())
        measured = any(w in EXPERIMENT_WORDS for w in near)
        if (decimal and measured) or counted:
            context = " ".join(text[max(0, match.start() - 50) : match.end() + 30].split())
            found.append(f"{match.group(0).strip()!r} in '... {context} ...'")
    return found


def glue_keys_used(markdown: str) -> set[str]:
    """The glue keys that ``markdown`` refers to (``{glue:text}`key:fmt``` and friends)."""
    return {
        m.group(1)
        for m in re.finditer(r"\{glue(?::\w*)?\}`([\w.-]+?)(?::[^`]*)?`", markdown)
    }


def problems(path: Path) -> list[str]:
    """Typed experiment numbers in the markdown cells of the notebook at ``path``."""
    nb = nbformat.read(path, as_version=4)
    return [
        f"{path.name} cell {i}: {hit}"
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "markdown"
        for hit in unglued_numbers(cell.source)
    ]


def main(argv: list[str]) -> int:
    found = [p for path in argv for p in problems(Path(path))]
    print("\n".join(found) or f"prose: no typed experiment numbers in {len(argv)} notebook(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
