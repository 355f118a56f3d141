"""The static interactive figure, driven in headless Chromium with the network cut off.

Needs Chromium (`apt-get install chromium`) and Playwright; skipped without them,
unless DL_COURSE_REQUIRE_BROWSER=1 (set by CI), which turns the skip into a failure.
"""


import matplotlib.pyplot as plt
import pytest
from browser_check import exercise_explorers, launch, offline_page, require_chromium

from dl_course import plotting, widgets

require_chromium()


def update(n=2, kind="line"):
    fig, ax = plotting.subplots(width=3, height=2)
    ax.plot(range(n), "o-" if kind == "line" else "s")
    ax.set_title(f"{kind} with {n} points")
    return fig


@pytest.fixture
def page_html(monkeypatch, tmp_path):
    shown = []
    monkeypatch.setattr(widgets, "_display", shown.append)
    monkeypatch.setenv(widgets.MODE_ENV, "static")
    widgets.explore(update, n=(1, 4, 1), kind=["line", "dots"])
    plt.close("all")
    page = tmp_path / "page.html"
    page.write_text(f"<!doctype html><html><body>{shown[0].data}</body></html>")
    return page


def test_controls_switch_frames_offline(page_html):
    from playwright.sync_api import sync_playwright

    requests = []
    with sync_playwright() as p:
        browser = launch(p)
        page = offline_page(browser, requests)
        page.goto(page_html.as_uri())
        img = page.locator(".dlc-explore img")
        first = img.get_attribute("src")
        slider, select = page.locator("input[type=range]"), page.locator("select")
        assert page.locator("output").inner_text() == "2"
        slider.focus()
        slider.press("ArrowRight")
        assert page.locator("output").inner_text() == "3"
        third = img.get_attribute("src")
        assert third != first
        select.select_option("1")
        assert img.get_attribute("src") not in (first, third)
        select.select_option("0")
        slider.press("ArrowLeft")
        assert img.get_attribute("src") == first  # back to the default frame
        assert exercise_explorers(page) == []
        browser.close()
    assert requests == []
