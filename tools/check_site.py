"""Checks on the built website: it must work offline and stay small.

- no page loads a script, stylesheet, image or frame from another host;
- MathJax is served from the site itself;
- every page is under 8 MB;
- every interactive figure carries its frames and the script that switches them;
- no page embeds ipywidgets (they need a kernel, so they are dead on the website);
- every `explore(...)` call of a chapter notebook shows up in the chapter's page as a
  static figure with its frames (a book built without ``DL_COURSE_WIDGETS=static``
  has none, which the other checks alone would not notice).

    python tools/check_site.py [_build/html]
"""

from __future__ import annotations

import ast
import json
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_PAGE_BYTES = 8 * 1024 * 1024
_REMOTE = re.compile(
    r"<(script|link|img|iframe|source|video|audio)\b[^>]*?\b(src|href)\s*=\s*[\"']?((https?:)?//[^\"' >]+)",
    re.IGNORECASE,
)
_CSS_REMOTE = re.compile(r"(@import\s+url\(|url\()\s*[\"']?(https?:)?//", re.IGNORECASE)
#: The script elements myst-nb writes for an ipywidgets view and for the widgets' state.
_IPYWIDGETS = re.compile(
    r"<script\b[^>]*\btype\s*=\s*[\"']?application/vnd\.jupyter\.widget-(view|state)\+json",
    re.IGNORECASE,
)
_EXPLORER = '<div class="dlc-explore"'
_PAYLOAD = re.compile(r'<script type="application/json" class="dlc-data">(.*?)</script>', re.DOTALL)
_PICTURE = '<img src="data:image/png;base64,'
_CONTROL = re.compile(r"<(input|select)\b[^>]*\bdata-dlc\b")


# -- notebooks --------------------------------------------------------------------------------


def python_source(cell_source: str) -> str:
    """The Python code of a notebook cell: IPython magics and shell escapes made plain calls.

    A cell magic (``%%time``, ``%%capture``) is dropped and its body kept.
    """
    from IPython.core.inputtransformer2 import TransformerManager

    if cell_source.lstrip().startswith("%%"):
        cell_source = cell_source.lstrip().partition("\n")[2]
    return TransformerManager().transform_cell(cell_source)


def code_trees(notebook: Path) -> list[ast.Module]:
    """The parsed code cells of ``notebook`` (a cell that is not Python parses as empty)."""
    import nbformat

    trees = []
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        try:
            trees.append(ast.parse(python_source(cell.source)))
        except SyntaxError:
            trees.append(ast.Module(body=[], type_ignores=[]))
    return trees


def calls_to(tree: ast.AST, name: str) -> int:
    """How many calls of ``name(...)`` or ``something.name(...)`` the code makes."""
    count = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Name) and func.id == name) or (
                isinstance(func, ast.Attribute) and func.attr == name
            ):
                count += 1
    return count


def explore_calls(notebook: Path) -> int:
    """Number of ``explore(...)`` calls in the code cells of ``notebook``."""
    return sum(calls_to(tree, "explore") for tree in code_trees(notebook))


# -- pages ------------------------------------------------------------------------------------


def _payload_problem(chunk: str) -> str | None:
    """What is wrong with one static interactive figure (its HTML), or None."""
    match = _PAYLOAD.search(chunk)
    if match is None:
        return "lost its frames"
    if _PICTURE not in chunk[: match.start()]:
        return "has no picture"
    try:
        data = json.loads(match.group(1))
        shape, labels, index, frames = (data[k] for k in ("shape", "labels", "index", "frames"))
    except (ValueError, KeyError, TypeError):
        return "has a broken frame table"
    if not (
        isinstance(shape, list)
        and shape
        and all(isinstance(n, int) and n >= 1 for n in shape)
        and isinstance(labels, list)
        and [len(row) if isinstance(row, list) else -1 for row in labels] == shape
    ):
        return "has a broken frame table (shape and labels disagree)"
    if not isinstance(index, list) or len(index) != math.prod(shape):
        return f"lost its frames: {len(index)} grid points for a grid of shape {shape}"
    if not isinstance(frames, list) or not frames or frames[0] != "":
        return "lost its frames: no frame table"
    if not all(isinstance(f, str) and f for f in frames[1:]):
        return "lost its frames: some frames are empty"
    if not all(isinstance(k, int) and 0 <= k < len(frames) for k in index):
        return f"lost its frames: an index points past its {len(frames)} frames"
    controls = len(_CONTROL.findall(chunk[: match.start()]))
    if controls != len(shape):
        return f"has {controls} controls for a grid of {len(shape)} sliders"
    return None


#: Script leftovers that point at a CDN from inside inline code (sphinx-thebe's loader).
_UNUSED_REMOTE = ("THEBE_JS_URL", "sphinx-thebe.js", "unpkg.com", "cdn.jsdelivr.net")


def static_figures(text: str) -> tuple[int, list[str]]:
    """Number of complete static interactive figures in a page, and what is wrong with the rest."""
    chunks = text.split(_EXPLORER)[1:]
    problems = []
    for k, chunk in enumerate(chunks, start=1):
        problem = _payload_problem(chunk)
        if problem:
            problems.append(f"interactive figure {k} {problem}")
    return len(chunks) - len(problems), problems


def check_page(path: Path) -> list[str]:
    """Problems found in one built HTML page."""
    problems = []
    text = path.read_text(encoding="utf-8", errors="replace")
    size = path.stat().st_size
    if size > MAX_PAGE_BYTES:
        problems.append(f"{path.name} is {size / 2**20:.1f} MB, over the 8 MB budget")
    for match in _REMOTE.finditer(text):
        problems.append(f"{path.name} loads {match.group(3)} from the network")
    for marker in _UNUSED_REMOTE:
        if marker in text:
            problems.append(f"{path.name} still carries {marker!r}, a script pointing at a CDN")
    if "$$" in text or "\\(" in text or "\\[" in text:
        if "_static/mathjax/tex-chtml.js" not in text:
            problems.append(f"{path.name} has math but does not load the vendored MathJax")
    kinds = sorted({m.group(1) for m in _IPYWIDGETS.finditer(text)})
    if kinds:
        problems.append(
            f"{path.name} embeds ipywidgets ({' and '.join(kinds)}), which are dead without a "
            "kernel: the notebooks ran without DL_COURSE_WIDGETS=static (run `make clean book`)"
        )
    problems += [f"{path.name}: {p}" for p in static_figures(text)[1]]
    return problems


def check_chapters(html_dir: Path, book_dir: Path) -> list[str]:
    """Every ``explore`` call of ``book_dir/chapters/*.ipynb`` must be a static figure in its page."""
    problems = []
    for notebook in sorted((Path(book_dir) / "chapters").glob("*.ipynb")):
        calls = explore_calls(notebook)
        page = Path(html_dir) / "chapters" / f"{notebook.stem}.html"
        if not page.exists():
            problems.append(f"chapters/{notebook.name} has no built page chapters/{page.name}")
            continue
        shown, _ = static_figures(page.read_text(encoding="utf-8", errors="replace"))
        if shown != calls:
            problems.append(
                f"chapters/{page.name} shows {shown} static interactive figures with frames, "
                f"but chapters/{notebook.name} calls explore {calls} times (were the notebooks "
                "run with DL_COURSE_WIDGETS=static? run `make clean book`)"
            )
    return problems


def check_site(html_dir: Path, book_dir: Path | None = None) -> list[str]:
    """Problems found in the built site under ``html_dir`` (empty when all is well).

    With ``book_dir`` (the book's source folder), also checks that each chapter
    page shows one static interactive figure per ``explore`` call of its notebook.
    """
    html_dir = Path(html_dir)
    pages = sorted(html_dir.rglob("*.html"))
    if not pages:
        return [f"no HTML pages under {html_dir}"]
    problems = [p for page in pages for p in check_page(page)]
    if not (html_dir / "_static" / "mathjax" / "tex-chtml.js").exists():
        problems.append("MathJax is not vendored into _static/mathjax")
    for css in html_dir.rglob("*.css"):
        if _CSS_REMOTE.search(css.read_text(encoding="utf-8", errors="replace")):
            problems.append(f"{css.relative_to(html_dir)} imports from the network")
    if book_dir is not None:
        problems += check_chapters(html_dir, book_dir)
    return problems


if __name__ == "__main__":
    found = check_site(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "_build" / "html"), ROOT)
    print("\n".join(found) or "site check: all good")
    sys.exit(1 if found else 0)
