"""Build the website: execute the chapters (cached), build strictly, then check the result.

The checks: no remote assets, pages under 8 MB, no ipywidgets, and every
`explore(...)` of a chapter a static figure with its frames (check_site), then,
where Chromium is installed, every page opened offline with typeset math and
working sliders (browser_check).

The caches of Jupyter Book and Sphinx key on the notebooks only, so a change to
`dl_course`, or to the widget mode the notebooks ran in, would leave stale outputs.
This script stamps each good build with a fingerprint of the package and the widget
mode, and starts from an empty `_build` whenever either changed since, or when the
execution cache holds ipywidgets outputs (a plain `jupyter-book build` without
`DL_COURSE_WIDGETS=static` fills it with sliders that are dead on the website).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from browser_check import check_pages, chromium_available
from check_site import check_site

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "_build"
#: The widget mode the book's notebooks run in (static figures with their frames).
WIDGET_MODE = "static"
_LIVE_WIDGET = "application/vnd.jupyter.widget-view+json"


def package_digest() -> str:
    """SHA-256 of every source file of the dl_course package."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "dl_course").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def build_stamp() -> str:
    """What the cached outputs depend on beyond the notebooks: the package and the widget mode."""
    return json.dumps({"dl_course": package_digest(), "widgets": WIDGET_MODE}, sort_keys=True)


def cache_has_live_widgets(build: Path = BUILD) -> bool:
    """True if an executed notebook in Jupyter Book's cache shows ipywidgets."""
    executed = build / ".jupyter_cache" / "executed"
    return any(
        _LIVE_WIDGET in path.read_text(encoding="utf-8", errors="replace")
        for path in executed.rglob("*.ipynb")
    )


def main() -> int:
    stamp = BUILD / ".dl_course.stamp"
    expected = build_stamp()
    if not stamp.exists() or stamp.read_text() != expected or cache_has_live_widgets():
        # Both caches key on the notebooks only: Sphinx would reuse its parsed pages
        # (.doctrees) and Jupyter Book its executed notebooks (.jupyter_cache).
        shutil.rmtree(BUILD, ignore_errors=True)
        BUILD.mkdir()
    # no training progress bars: in a notebook they are ipywidgets, and stderr shows in pages
    env = os.environ | {"DL_COURSE_WIDGETS": WIDGET_MODE, "DL_COURSE_PROGRESS": "0"}
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    start = time.perf_counter()
    result = subprocess.run(
        [str(jupyter_book), "build", str(ROOT), "-W", "-n", "--keep-going"], env=env, check=False
    )
    if result.returncode != 0:
        print("The book build failed: see the warnings and errors above.", file=sys.stderr)
        return result.returncode
    stamp.write_text(expected)
    problems = check_site(BUILD / "html", ROOT)
    if chromium_available():
        found, summary = check_pages(BUILD / "html")
        problems += found
        print(summary)
    elif os.environ.get("DL_COURSE_REQUIRE_BROWSER") == "1":
        problems.append("Chromium is required for the browser check (DL_COURSE_REQUIRE_BROWSER=1)")
    else:
        print("browser check skipped: install Chromium (apt-get install chromium) to run it")
    for problem in problems:
        print(f"site check: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"\nBook built and checked in {time.perf_counter() - start:.0f} s.")
    print(f"Open file://{BUILD / 'html' / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
