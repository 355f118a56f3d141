"""Link every glossary term at its first use in the book, or check that it is linked.

The terms are those of `chapters/glossary.md`. The book is read in table-of-contents
order; in each markdown cell only plain prose counts (not math, code, roles, links,
headings or directive options). The first use of a term must be a ``{term}`` role.

    python tools/glossary.py check   # list terms whose first use is not linked
    python tools/glossary.py link    # link those first uses (edits the notebooks)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
GLOSSARY = ROOT / "chapters" / "glossary.md"

#: Spans of a markdown cell that are not prose: fenced code, math, inline code and roles,
#: links, headings, directive fences and options, HTML tags and MyST targets.
_PROTECTED = re.compile(
    r"```(?!\{(?:admonition|prf:|note|warning|tip|important|exercise|solution)).*?```"
    r"|\$\$.*?\$\$|\$[^$\n]+\$"
    r"|\{[\w:-]+\}`[^`]*`|`[^`]*`"
    r"|\[[^\]]*\]\([^)]*\)"
    r"|^#[^\n]*$|^```[^\n]*$|^:[\w-]+:[^\n]*$|<[^>\n]+>|^\([\w-]+\)=$",
    re.DOTALL | re.MULTILINE,
)
_LINK = re.compile(r"\{term\}`([^`<]*?)(?:\s*<([^>]+)>)?`")


def terms() -> list[str]:
    """The glossary's terms, as written in chapters/glossary.md."""
    block = GLOSSARY.read_text().split("```{glossary}", 1)[1].split("\n```", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip() and not line.startswith(" ")]


def book_notebooks() -> list[Path]:
    """Chapter notebooks in table-of-contents order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part["chapters"]]
    return [ROOT / f"{f}.ipynb" for f in files if (ROOT / f"{f}.ipynb").exists()]


def _pattern(term: str) -> re.Pattern:
    words = r"[\s-]+".join(re.escape(w) for w in re.split(r"[\s-]+", term))
    return re.compile(rf"(?<![\w-])({words}(?:s|es)?)(?![\w-])", re.IGNORECASE)


def _prose_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of the prose between protected spans."""
    spans, last = [], 0
    for match in _PROTECTED.finditer(text):
        spans.append((last, match.start()))
        last = match.end()
    return spans + [(last, len(text))]


def first_uses(notebooks: list[Path]) -> dict[str, tuple[Path, int, int | None]]:
    """Per term: (notebook, cell index, offset of its first plain use, or None if first linked)."""
    found: dict[str, tuple[Path, int, int | None]] = {}
    patterns = {t: _pattern(t) for t in terms()}
    for path in notebooks:
        cells = nbformat.read(path, as_version=4).cells
        for k, cell in enumerate(cells):
            if cell.cell_type != "markdown":
                continue
            text = cell.source
            links = {(m.group(2) or m.group(1)).strip().lower(): m.start() for m in _LINK.finditer(text)}
            for term, pattern in patterns.items():
                if term in found:
                    continue
                plain = [m.start() for a, b in _prose_spans(text) for m in pattern.finditer(text, a, b)]
                linked = links.get(term.lower())
                if plain or linked is not None:
                    first_plain = min(plain) if plain else None
                    if linked is not None and (first_plain is None or linked < first_plain):
                        first_plain = None
                    found[term] = (path, k, first_plain)
    return found


def unlinked(notebooks: list[Path] | None = None) -> list[str]:
    """Terms whose first use in the book is plain text, with where it is; and unused terms."""
    notebooks = book_notebooks() if notebooks is None else notebooks
    found = first_uses(notebooks)
    problems = [f"{term}: first used in {path.name}, cell {k}, without a link"
                for term, (path, k, offset) in found.items() if offset is not None]
    return problems + [f"{term}: never used in the chapters" for term in terms() if term not in found]


def link(notebooks: list[Path] | None = None) -> int:
    """Turn each term's first plain use into a ``{term}`` role; returns how many were linked."""
    notebooks = book_notebooks() if notebooks is None else notebooks
    count = 0
    while todo := [(t, *v) for t, v in first_uses(notebooks).items() if v[2] is not None]:
        term, path, k, offset = todo[0]  # one at a time: a link shifts the offsets after it
        nb = nbformat.read(path, as_version=4)
        text = nb.cells[k].source
        word = _pattern(term).match(text, offset).group(1)
        role = f"{{term}}`{word}`" if word.lower() == term.lower() else f"{{term}}`{word} <{term}>`"
        nb.cells[k].source = text[:offset] + role + text[offset + len(word):]
        nbformat.write(nb, path)
        count += 1
    return count


if __name__ == "__main__":
    if sys.argv[1:] == ["link"]:
        print(f"linked {link()} first uses")
    problems = unlinked()
    print("\n".join(problems) or "every glossary term is linked at its first use")
    sys.exit(1 if problems else 0)
