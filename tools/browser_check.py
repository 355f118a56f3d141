"""Open the built website in headless Chromium with the network cut off, and check it works.

For every chapter page: MathJax typesets the math, every interactive figure's
controls change its picture, and the page makes no request beyond the local
files. Optionally saves screenshots (full page and each figure before/after).

    python tools/browser_check.py _build/html [--screenshots DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

CHROMIUM = os.environ.get("DL_COURSE_CHROMIUM", "/usr/bin/chromium")
#: Flags that keep a headless Chromium from phoning home on this offline machine.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_available() -> bool:
    """True when a Chromium binary and Playwright are installed."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is not None


def require_chromium() -> None:
    """At the top of a test module: skip it without a browser, or fail if one is required.

    CI sets DL_COURSE_REQUIRE_BROWSER=1, which turns the skip into a failure.
    """
    import pytest

    if chromium_available():
        return
    if os.environ.get("DL_COURSE_REQUIRE_BROWSER") == "1":
        pytest.fail("Chromium and Playwright are required (DL_COURSE_REQUIRE_BROWSER=1)", pytrace=False)
    pytest.skip("needs Chromium (/usr/bin/chromium) and Playwright", allow_module_level=True)


def launch(playwright):
    """A headless Chromium browser from the system package."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def offline_page(browser, requests: list[str]):
    """A new page that refuses, and records, every request that is not a local file."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})

    def route(r):
        if r.request.url.startswith(("file://", "data:")):
            r.continue_()
        else:
            requests.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    return page


def exercise_explorers(page, shots: Path | None = None, stem: str = "") -> list[str]:
    """Move every control of every interactive figure on ``page``; list those that do nothing."""
    problems = []
    figures = page.locator(".dlc-explore")
    for k in range(figures.count()):
        figure = figures.nth(k)
        figure.scroll_into_view_if_needed()
        img = figure.locator("img")
        if shots:
            figure.screenshot(path=str(shots / f"{stem}-figure{k + 1}-before.png"))
        controls = figure.locator("[data-dlc]")
        for j in range(controls.count()):
            control = controls.nth(j)
            before = img.get_attribute("src")
            if control.evaluate("e => e.tagName") == "SELECT":
                options = control.locator("option").count()
                current = int(control.input_value())
                control.select_option(str((current + 1) % options))
            else:
                control.focus()
                key = "ArrowLeft" if control.input_value() == control.get_attribute("max") else "ArrowRight"
                control.press(key)
            if img.get_attribute("src") == before:
                problems.append(f"{stem}: figure {k + 1}, control {j + 1} does not change the picture")
        if shots:
            figure.screenshot(path=str(shots / f"{stem}-figure{k + 1}-after.png"))
    return problems


#: Queries that the offline search must answer, with the page that must be among the results.
SEARCHES = {"Novikoff": "01_perceptron", "neural tangent kernel": "18_neural_tangent_kernel"}


def watch_console(page, stem: str, problems: list[str]) -> None:
    """Report every console error and uncaught page error of ``page`` as a problem."""
    page.on("console", lambda m: m.type == "error" and problems.append(f"{stem}: console error: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"{stem}: page error: {e}"))


def check_math(page, stem: str) -> list[str]:
    """MathJax must typeset the page's math, if it has any."""
    if page.locator(".math").count() == 0:
        return []
    try:
        page.wait_for_selector("mjx-container", state="attached", timeout=15_000)
    except Exception:  # noqa: BLE001 - reported as a problem
        return [f"{stem}: MathJax did not typeset the math"]
    return []


def check_prev_next(page, stem: str, html_dir: Path) -> list[str]:
    """The previous/next links at the foot of a chapter lead to pages that exist."""
    problems = []
    for link in page.locator(".prev-next-area a").all():
        target = (Path(page.url.removeprefix("file://")).parent / link.get_attribute("href")).resolve()
        if not target.is_file() or html_dir not in target.parents:
            problems.append(f"{stem}: previous/next link to {link.get_attribute('href')} is broken")
    return problems


def check_toggles(page, stem: str) -> list[str]:
    """Every toggled block (a hidden solution) opens on a click and closes on the next."""
    problems = []
    for k, button in enumerate(page.locator("button.toggle-button").all(), start=1):
        button.scroll_into_view_if_needed()
        block = button.evaluate_handle("b => b.closest('.admonition, .toggle')")
        states = [block.evaluate("e => e.classList.contains('toggle-hidden')")]
        for _ in range(2):
            button.click()
            states.append(block.evaluate("e => e.classList.contains('toggle-hidden')"))
        if states != [True, False, True]:
            problems.append(f"{stem}: hidden block {k} does not open and close on a click")
    return problems


def check_dark_figures(page, stem: str) -> list[str]:
    """In dark mode every figure must sit on a light card: the middle of each edge is near white."""
    from io import BytesIO

    from PIL import Image

    page.evaluate("document.documentElement.dataset.theme = 'dark'")
    problems = []
    images = page.locator(".cell_output img, .dlc-explore img")
    for k in range(images.count()):
        image = images.nth(k)
        image.scroll_into_view_if_needed()
        shot = Image.open(BytesIO(image.screenshot())).convert("L")
        w, h = shot.width, shot.height
        edges = [shot.getpixel(xy) for xy in ((w // 2, 2), (w // 2, h - 3), (2, h // 2), (w - 3, h // 2))]
        if min(edges) < 235:
            problems.append(f"{stem}: figure {k + 1} is dark-on-dark in dark mode")
    page.evaluate("document.documentElement.dataset.theme = 'light'")
    return problems


def check_search(browser, html_dir: Path, requests: list[str]) -> list[str]:
    """The offline search page finds each query of SEARCHES on its expected page."""
    problems = []
    for query, stem in SEARCHES.items():
        if not (html_dir / "chapters" / f"{stem}.html").exists():
            problems.append(f"search: the page {stem} that should answer {query!r} is not built")
            continue
        page = offline_page(browser, requests)
        watch_console(page, "search", problems)
        page.goto(f"{(html_dir / 'search.html').as_uri()}?q={query.replace(' ', '+')}")
        try:
            page.wait_for_selector(f"#search-results a[href*='{stem}']", timeout=20_000)
        except Exception:  # noqa: BLE001 - reported as a problem
            problems.append(f"search: {query!r} does not find chapters/{stem}")
        page.close()
    return problems


def check_pages(html_dir: Path, shots: Path | None = None) -> tuple[list[str], str]:
    """Problems found on the site's pages, and a one-line summary.

    Every page: no console or page error, no request leaving the machine, math
    typeset. Chapter pages also: every slider and dropdown changes its figure,
    previous/next links resolve, hidden solutions open and close, and figures
    stay readable in dark mode. Then the offline search (SEARCHES).
    """
    from playwright.sync_api import sync_playwright

    html_dir = Path(html_dir).resolve()
    chapters = sorted((html_dir / "chapters").glob("*.html"))
    others = sorted(p for p in html_dir.glob("*.html") if p.name != "index.html")
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    problems, requests, n_figures, n_math = [], [], 0, 0
    with sync_playwright() as p:
        browser = launch(p)
        for path in chapters + others:
            page = offline_page(browser, requests)
            watch_console(page, path.stem, problems)
            page.goto(path.as_uri(), wait_until="load")
            found = check_math(page, path.stem)
            n_math += page.locator(".math").count() > 0 and not found
            problems += found
            if path in chapters:
                n_figures += page.locator(".dlc-explore").count()
                problems += exercise_explorers(page, shots, path.stem)
                problems += check_prev_next(page, path.stem, html_dir)
                problems += check_toggles(page, path.stem)
                problems += check_dark_figures(page, path.stem)
            if shots:
                page.screenshot(path=str(shots / f"{path.stem}.png"), full_page=True)
            page.close()
        problems += check_search(browser, html_dir, requests)
        browser.close()
    problems += [f"blocked a request to {url}" for url in sorted(set(requests))]
    summary = (f"browser check: {len(chapters) + len(others)} pages, math typeset on {n_math}, "
               f"{n_figures} interactive figures, searches {len(SEARCHES)}, "
               f"{len(requests)} network requests")
    return problems, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", nargs="?", default="_build/html")
    parser.add_argument("--screenshots", type=Path, default=None)
    args = parser.parse_args()
    problems, summary = check_pages(Path(args.html_dir), args.screenshots)
    print("\n".join(problems))
    print(summary)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
