"""Checks on the built website: it must work offline and stay small.

- no page loads a script, stylesheet, image or frame from another host;
- MathJax is served from the site itself;
- every page is under 8 MB;
- every interactive figure carries its frames and the script that switches them.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

MAX_PAGE_BYTES = 8 * 1024 * 1024
_REMOTE = re.compile(
    r"<(script|link|img|iframe|source|video|audio)\b[^>]*?\b(src|href)\s*=\s*[\"']?((https?:)?//[^\"' >]+)",
    re.IGNORECASE,
)
_CSS_REMOTE = re.compile(r"(@import\s+url\(|url\()\s*[\"']?(https?:)?//", re.IGNORECASE)


def check_page(path: Path) -> list[str]:
    """Problems found in one built HTML page."""
    problems = []
    text = path.read_text(encoding="utf-8", errors="replace")
    size = path.stat().st_size
    if size > MAX_PAGE_BYTES:
        problems.append(f"{path.name} is {size / 2**20:.1f} MB, over the 8 MB budget")
    for match in _REMOTE.finditer(text):
        problems.append(f"{path.name} loads {match.group(3)} from the network")
    if "$$" in text or "\\(" in text or "\\[" in text:
        if "_static/mathjax/tex-chtml.js" not in text:
            problems.append(f"{path.name} has math but does not load the vendored MathJax")
    explorers = text.count('class="dlc-explore"')
    if explorers != text.count('class="dlc-data"'):
        problems.append(f"{path.name}: an interactive figure lost its frames")
    return problems


def check_site(html_dir: Path) -> list[str]:
    """Problems found in the built site under ``html_dir`` (empty when all is well)."""
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
    return problems


if __name__ == "__main__":
    found = check_site(Path(sys.argv[1] if len(sys.argv) > 1 else "_build/html"))
    print("\n".join(found) or "site check: all good")
    sys.exit(1 if found else 0)
