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
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat
import yaml
from browser_check import check_pages, chromium_available
from check_site import check_site

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "_build"
#: The widget mode the book's notebooks run in (static figures with their frames).
WIDGET_MODE = "static"
#: Seconds a cell may run, as in _config.yml's execute.timeout.
EXECUTION_TIMEOUT = 120
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


def toc_notebooks() -> list[Path]:
    """The chapter notebooks of the table of contents, in order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part["chapters"]]
    return [ROOT / f"{f}.ipynb" for f in files if (ROOT / f"{f}.ipynb").exists()]


def _execute(path: Path):
    """Run one notebook as Jupyter Book would (its folder as working directory)."""
    from jupyter_cache.executors.utils import single_nb_execution

    notebook = nbformat.read(path, as_version=4)
    result = single_nb_execution(notebook, cwd=str(path.parent), timeout=EXECUTION_TIMEOUT,
                                 allow_errors=False)
    return notebook, result.time, result.exc_string if result.err else None


def execute_in_parallel(workers: int = 2) -> list[str]:
    """Fill Jupyter Book's execution cache, ``workers`` notebooks at a time.

    Jupyter Book executes the notebooks one after the other; with two cores, two
    at a time (each kernel on one thread) takes about half as long. Notebooks
    already in the cache are skipped; the build then finds every notebook cached.
    Returns the errors, one per failed notebook.
    """
    from jupyter_cache import get_cache
    from jupyter_cache.cache.main import CacheBundleIn

    cache = get_cache(str(BUILD / ".jupyter_cache"))
    todo = []
    for path in toc_notebooks():
        try:
            cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            todo.append(path)
    errors = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for path, (notebook, seconds, error) in zip(todo, pool.map(_execute, todo), strict=True):
            name = path.relative_to(ROOT)
            if error:
                errors.append(f"{name} failed:\n{error}")
                continue
            print(f"executed {name} in {seconds:.1f} s", flush=True)
            record = cache.add_nb_to_project(str(path))
            cache.cache_notebook_bundle(CacheBundleIn(notebook, record.uri,
                                                      data={"execution_seconds": seconds}),
                                        check_validity=False, overwrite=True)
    return errors


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
    start = time.perf_counter()
    # two kernels side by side, one thread each (the chapters give the same results on 1 or 2)
    saved = dict(os.environ)
    os.environ.update(env | {"OMP_NUM_THREADS": "1"})
    errors = execute_in_parallel()
    os.environ.clear()
    os.environ.update(saved)
    if errors:
        print("\n\n".join(errors), file=sys.stderr)
        return 1
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
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
