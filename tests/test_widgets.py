import json
import re

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from dl_course import plotting, widgets
from dl_course.widgets import LogSlider, explore


class Recorder:
    """An update function that records its calls and draws something that depends on them."""

    def __init__(self):
        self.calls = []

    def __call__(self, freq=1.0, n=3, kind="sin"):
        self.calls.append({"freq": freq, "n": n, "kind": kind})
        fig, ax = plotting.subplots(width=3, height=2)
        x = np.linspace(0, 1, 50)
        y = np.sin(2 * np.pi * freq * x) if kind == "sin" else np.cos(2 * np.pi * freq * x)
        ax.plot(x, n * y)
        ax.set_title(f"{kind} {freq} {n}")
        return fig


@pytest.fixture
def shown(monkeypatch):
    """Capture what explore displays instead of sending it to a notebook."""
    captured = []
    monkeypatch.setattr(widgets, "_display", captured.append)
    monkeypatch.delenv(widgets.BENCH_ENV, raising=False)
    yield captured
    plt.close("all")


def static_payload(html):
    match = re.search(r'<script type="application/json" class="dlc-data">(.*?)</script>', html)
    return json.loads(match.group(1))


def test_static_mode_renders_one_frame_per_grid_point(shown, monkeypatch):
    monkeypatch.setenv(widgets.MODE_ENV, "static")
    update = Recorder()
    explore(update, freq=(0.5, 2.0, 0.5), n=(1, 3, 1), kind=["sin", "cos"])
    assert update.calls[0] == {"freq": 1.0, "n": 3, "kind": "sin"}  # defaults first
    assert len(update.calls) == 4 * 3 * 2  # every grid point, the default drawn once
    (html,) = [obj.data for obj in shown]
    data = static_payload(html)
    assert data["shape"] == [4, 3, 2]
    assert data["labels"] == [["0.5", "1", "1.5", "2"], ["1", "2", "3"], ["sin", "cos"]]
    assert len(data["index"]) == 24
    assert len(data["frames"]) == 24 and len(set(data["frames"])) == 24  # all figures differ
    default = (1 * 3 + 2) * 2 + 0  # freq index 1, n index 2, kind index 0
    assert data["index"][default] == 0 and data["frames"][0] == ""  # the <img> shows it
    assert html.count('type="range"') == 2 and html.count("<select") == 1
    assert 'value="1"' in html and 'value="2"' in html and '<option value="0" selected>' in html
    assert "http" not in html.replace("http://www.w3.org", "")  # nothing fetched


def test_static_mode_shares_identical_frames(shown, monkeypatch):
    monkeypatch.setenv(widgets.MODE_ENV, "static")

    def update(a=0, b=0):  # b changes nothing
        fig, ax = plotting.subplots(width=2, height=2)
        ax.set_title(str(a))
        return fig

    explore(update, a=(0, 2, 1), b=(0, 3, 1))
    data = static_payload(shown[0].data)
    assert len(data["index"]) == 12
    assert len(data["frames"]) == 3


def test_static_mode_thins_sliders_to_the_frame_budget(shown, monkeypatch):
    monkeypatch.setenv(widgets.MODE_ENV, "static")
    monkeypatch.setenv(widgets.MAX_FRAMES_ENV, "10")
    seen = []

    def update(lr=0.01, depth=2):
        seen.append((lr, depth))
        fig, _ = plotting.subplots(width=2, height=2)
        return fig

    explore(update, lr=LogSlider(1e-3, 1.0, 16), depth=(1, 4, 1))
    data = static_payload(shown[0].data)
    assert np.prod(data["shape"]) <= 10
    labels = data["labels"][0]
    assert (
        labels[0] == "0.001" and labels[-1] == "1" and "0.01" in labels
    )  # ends and default survive
    assert data["index"][labels.index("0.01") * data["shape"][1] + 1] == 0  # the default frame


def test_live_mode_wires_controls_to_update(shown, monkeypatch):
    monkeypatch.setenv(widgets.MODE_ENV, "live")
    update = Recorder()
    explore(update, freq=LogSlider(0.1, 10.0, 5), n=(1, 5, 1), kind=["sin", "cos"])
    (box,) = shown[-1:]
    freq, n, kind = box.children[0].children
    assert type(freq).__name__ == "FloatLogSlider" and freq.value == pytest.approx(1.0)
    assert type(n).__name__ == "IntSlider" and (n.min, n.max, n.value) == (1, 5, 3)
    assert type(kind).__name__ == "Dropdown" and kind.options == ("sin", "cos")
    assert update.calls == [{"freq": 1.0, "n": 3, "kind": "sin"}]
    n.value = 5
    kind.value = "cos"
    freq.value = 10**0.5000000001  # round-off from the browser snaps to the grid
    assert update.calls[1:] == [
        {"freq": 1.0, "n": 5, "kind": "sin"},
        {"freq": 1.0, "n": 5, "kind": "cos"},
        {"freq": pytest.approx(3.16227766017), "n": 5, "kind": "cos"},
    ]


@pytest.mark.parametrize("mode", ["live", "static"])
def test_errors_in_update_propagate(shown, monkeypatch, mode):
    monkeypatch.setenv(widgets.MODE_ENV, mode)

    def broken(x=1):
        raise RuntimeError("figure is broken")

    with pytest.raises(RuntimeError, match="figure is broken"):
        explore(broken, x=(0, 2, 1))
    assert shown == []


def test_bench_log_records_latency(shown, monkeypatch, tmp_path):
    log = tmp_path / "bench.jsonl"
    monkeypatch.setenv(widgets.MODE_ENV, "static")
    monkeypatch.setenv(widgets.BENCH_ENV, str(log))
    explore(Recorder(), n=(1, 4, 1))
    (record,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert record["sliders"] == ["n"] and record["update"] == "Recorder"
    assert 0 < record["median_ms"] <= record["max_ms"]
    assert record["frames_s"] > 0 and record["html_kb"] > 1


@pytest.mark.parametrize(
    "sliders, error, match",
    [
        ({}, ValueError, "at least one slider"),
        ({"missing": (0, 1, 1)}, ValueError, "not a parameter of update"),
        ({"a": (0, 1)}, TypeError, "must be a \\(low, high, step\\) tuple"),
        ({"a": (1, 0, 1)}, ValueError, "need low < high"),
        ({"a": (0.0, 1.0, 0.3)}, ValueError, "whole number"),
        ({"a": (2, 6, 2)}, ValueError, "default 1 of 'a' is not one of"),
        ({"a": []}, ValueError, "must not be empty"),
        ({"a": [1, 1]}, ValueError, "must be distinct"),
        ({"a": LogSlider(0.1, 10, 2)}, ValueError, "is not one of"),
    ],
)
def test_bad_sliders_are_rejected(shown, sliders, error, match):
    def update(a=1):
        return plt.figure()

    with pytest.raises(error, match=match):
        explore(update, **sliders)


def test_a_slider_needs_a_default_to_start_from(shown):
    with pytest.raises(ValueError, match="parameter 'a' of update needs a default"):
        explore(lambda a: plt.figure(), a=(0, 2, 1))


def test_parameters_without_default_need_a_slider(shown):
    def update(a=1, b=None, *, c):
        return plt.figure()

    with pytest.raises(ValueError, match="parameter 'c' of update has no default and no slider"):
        explore(update, a=(0, 2, 1))


def test_update_must_return_a_figure(shown):
    with pytest.raises(TypeError, match="must return a matplotlib Figure, got int"):
        explore(lambda a=1: 3, a=(0, 2, 1))


def test_log_slider_validates():
    with pytest.raises(ValueError, match="LogSlider low must be > 0"):
        LogSlider(0.0, 1.0)
    with pytest.raises(ValueError, match="LogSlider num must be >= 2"):
        LogSlider(0.1, 1.0, 1)


def test_mode_variable_is_validated(shown, monkeypatch):
    monkeypatch.setenv(widgets.MODE_ENV, "fancy")
    with pytest.raises(ValueError, match="must be 'live' or 'static'"):
        explore(Recorder(), n=(1, 3, 1))


def test_figures_are_closed(shown, monkeypatch):
    monkeypatch.setenv(widgets.MODE_ENV, "static")
    plt.close("all")
    explore(Recorder(), n=(1, 3, 1))
    assert plt.get_fignums() == []
    assert isinstance(Recorder()(), Figure)


def test_reused_layout_falls_back_when_labels_would_be_clipped():
    def draw(label):
        fig, ax = plotting.subplots(width=3, height=2)
        ax.plot([0, 1], [0, 1])
        ax.set_yticks([0, 1], ["0", label])
        ax.set_ylabel("value")
        return fig

    first = draw("1")
    widgets._png(first)
    layout = widgets._layout(first)
    same = draw("2")
    widgets._png(same, layout)
    assert (
        same.get_layout_engine() is None
        or type(same.get_layout_engine()).__name__ == "PlaceHolderLayoutEngine"
    )
    wide = draw("a very, very long tick label")
    widgets._png(wide, layout)
    assert type(wide.get_layout_engine()).__name__ == "ConstrainedLayoutEngine"  # re-laid out
    assert not widgets._clipped(wide, wide.canvas.get_renderer())
