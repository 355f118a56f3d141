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


def check_pages(html_dir: Path, shots: Path | None = None) -> tuple[list[str], str]:
    """Problems found on the chapter pages, and a one-line summary."""
    from playwright.sync_api import sync_playwright

    html_dir = Path(html_dir).resolve()
    pages = sorted((html_dir / "chapters").glob("*.html"))
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    problems, requests, n_figures, n_math = [], [], 0, 0
    with sync_playwright() as p:
        browser = launch(p)
        for path in pages:
            page = offline_page(browser, requests)
            page.goto(path.as_uri(), wait_until="load")
            has_math = page.locator(".math").count() > 0
            if has_math:
                try:
                    page.wait_for_selector("mjx-container", state="attached", timeout=15_000)
                    n_math += 1
                except Exception:  # noqa: BLE001 - reported as a problem below
                    problems.append(f"{path.name}: MathJax did not typeset the math")
            n_figures += page.locator(".dlc-explore").count()
            problems += exercise_explorers(page, shots, path.stem)
            if shots:
                page.screenshot(path=str(shots / f"{path.stem}.png"), full_page=True)
            page.close()
        browser.close()
    problems += [f"blocked a request to {url}" for url in sorted(set(requests))]
    summary = (f"browser check: {len(pages)} pages, math typeset on {n_math}, "
               f"{n_figures} interactive figures, {len(requests)} network requests")
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
