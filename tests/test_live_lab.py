"""Live mode, as a reader running the notebooks meets it: JupyterLab, a chapter, a slider.

JupyterLab is started headless on a copy of a chapter (so that autosave cannot
touch the repository), the notebook is run from the Run menu, one ipywidgets
slider is moved with the keyboard, and the figure below it must change. Every
request the page makes outside the local server is refused and reported.

Needs Chromium and Playwright, like the other browser tests; skipped without them
unless DL_COURSE_REQUIRE_BROWSER=1 (set by CI), which turns the skip into a failure.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from browser_check import launch, require_chromium

require_chromium()

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "01_perceptron.ipynb"
TOKEN = "dl-course-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A headless JupyterLab serving a copy of the chapter; yields its base URL."""
    notebook = nbformat.read(ROOT / "chapters" / CHAPTER, as_version=4)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, tmp_path / CHAPTER)
    # JupyterLab 4 renders only the cells in view by default (the test needs them all in the
    # page), and asks whether to fetch Jupyter news
    settings = tmp_path / "config" / "lab" / "user-settings" / "@jupyterlab"
    for extension, values in {"notebook-extension/tracker": '{"windowingMode": "none"}',
                              "apputils-extension/notification": '{"fetchNews": "false"}'}.items():
        path = settings / f"{extension}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(values)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DL_COURSE_WIDGETS"}  # live widgets
    env |= {"DL_COURSE_PROGRESS": "0", "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
         "--ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={tmp_path}",
         "--LabApp.news_url=", "--allow-root"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start within 60 s")
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_live_slider_redraws_its_figure(lab):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    outside = []
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})

        def route(r):
            if r.request.url.startswith((lab, "data:", "blob:", "ws://127.0.0.1")):
                r.continue_()
            else:
                outside.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.goto(f"{lab}/lab/tree/{CHAPTER}?token={TOKEN}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        select = page.locator(".jp-Dialog").get_by_role("button", name="Select", exact=True)
        try:  # JupyterLab may ask which kernel to start
            select.click(timeout=15_000)
        except PlaywrightTimeout:
            pass
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                               state="attached", timeout=60_000)
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        slider = page.locator(".widget-slider").first
        slider.wait_for(timeout=120_000)
        # the slider's callback runs once the kernel has finished the whole notebook
        page.wait_for_function(
            "() => document.querySelectorAll('.jp-InputPrompt').length > 0 && "
            "[...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
            ".every(p => /\\[\\d+\\]/.test(p.textContent))", timeout=240_000,
        )
        figure = slider.locator("xpath=ancestor::div[contains(@class,'widget-vbox')][1]")
        image = figure.locator(".widget-output img")
        image.wait_for(timeout=30_000)
        before = image.get_attribute("src")
        handle = slider.locator(".noUi-handle")
        handle.focus()
        handle.press("ArrowRight")
        # the redraw replaces the image element: look it up afresh inside the figure
        page.wait_for_function(
            "([box, src]) => { const img = box.querySelector('.widget-output img');"
            " return img !== null && img.getAttribute('src') !== src; }",
            arg=[figure.element_handle(), before], timeout=60_000,
        )
        assert image.get_attribute("src").startswith("data:image/png")
        browser.close()
    assert outside == [], f"the page asked the network for {sorted(set(outside))}"
