import itertools
import json
import re
from html.parser import HTMLParser

import matplotlib.pyplot as plt
import numpy as np
import pytest

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


def label(value):
    """How a control labels a value: 4 significant digits for floats."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class Page(HTMLParser):
    """The start tags (with attributes) and the text inside each kind of element."""

    def __init__(self):
        super().__init__()
        self.tags, self.text, self._open = [], {}, []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._open.append(tag)
        self.text.setdefault(tag, []).append("")

    def handle_endtag(self, tag):
        if self._open and self._open[-1] == tag:
            self._open.pop()

    def handle_data(self, data):
        if self._open:
            self.text[self._open[-1]][-1] += data


def check_round_trip(html, update, calls):
    """Check the page's payload against the calls ``update`` received, grid point by grid point.

    ``calls[0]`` holds the defaults (the first frame, the <img>'s own source) and
    ``calls[1:]`` the other grid points in the order of the flat index. Every
    grid point must show the frame that ``update`` draws for its values.
    """
    data = static_payload(html)
    shape, index, frames = data["shape"], data["index"], data["frames"]
    assert [len(labels) for labels in data["labels"]] == shape
    assert len(index) == int(np.prod(shape))
    assert all(0 <= k < len(frames) for k in index)  # every index points at a frame
    assert frames[0] == "" and all(frames[1:]) and sorted(set(index)) == list(range(len(frames)))
    first = re.search(r'<img src="data:image/png;base64,([^"]+)"', html).group(1)
    names = list(calls[0])
    reference = update(**calls[0])
    assert widgets._encode_png(reference) == first
    layout = widgets._layout(reference)
    rest = iter(calls[1:])
    for flat, combo in enumerate(itertools.product(*(range(n) for n in shape))):
        labels = [data["labels"][j][i] for j, i in enumerate(combo)]
        values = calls[0] if labels == [label(calls[0][n]) for n in names] else next(rest)
        assert labels == [label(values[n]) for n in names]
        shown = frames[index[flat]] or first
        expected = first if values is calls[0] else widgets._encode_png(update(**values), layout)
        assert shown == expected, f"grid point {labels} shows the wrong frame"
        plt.close("all")
    assert next(rest, None) is None
    return data


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

    def update(lr=0.01, depth=2):  # every value draws a different title
        seen.append({"lr": lr, "depth": depth})
        fig, ax = plotting.subplots(width=2, height=2)
        ax.set_title(f"{lr:.4g} {depth}")
        return fig

    explore(update, lr=LogSlider(1e-3, 1.0, 16), depth=(1, 4, 1))
    calls = list(seen)
    data = check_round_trip(shown[0].data, update, calls)
    assert data["shape"] == [3, 3]
    assert data["labels"] == [["0.001", "0.01", "1"], ["1", "2", "4"]]  # ends and default
    assert data["index"][1 * 3 + 1] == 0  # the default combination shows the <img>'s frame


def test_a_grid_that_cannot_keep_ends_and_default_is_refused(shown, monkeypatch):
    monkeypatch.setenv(widgets.MODE_ENV, "static")

    def update(a=2, b=0):
        return plotting.subplots(width=2, height=2)[0]

    monkeypatch.setenv(widgets.MAX_FRAMES_ENV, "2")  # an interior default needs 3 values
    with pytest.raises(ValueError, match="ends and default needs 3; raise DL_COURSE_MAX_FRAMES"):
        explore(update, a=(0, 4, 1))
    monkeypatch.setenv(widgets.MAX_FRAMES_ENV, "8")
    with pytest.raises(ValueError, match="needs 9"):
        explore(update, a=(0, 4, 1), b=(-1, 1, 1))
    assert shown == []
    monkeypatch.setenv(widgets.MAX_FRAMES_ENV, "2")  # a default at an end: the two ends
    explore(update, b=(0, 4, 1))
    assert static_payload(shown[0].data)["labels"] == [["0", "4"]]


def test_thinning_keeps_ends_and_default_for_every_count():
    for n in range(2, 14):
        for default in range(n):
            control = widgets._Control("x", "int", tuple(range(n)), default)
            smallest = len({0, n - 1, default})
            for count in range(smallest, n + 1):
                kept = widgets._thinned(control, count)
                assert len(set(kept)) == count == len(kept) and kept == sorted(kept)
                assert {0, n - 1, default} <= set(kept)
            with pytest.raises(ValueError, match="cannot keep its ends and default"):
                widgets._thinned(control, smallest - 1)


def test_static_html_of_a_three_value_slider_round_trips(shown, monkeypatch):
    monkeypatch.setenv(widgets.MODE_ENV, "static")
    seen = []

    def update(n=2):
        seen.append({"n": n})
        fig, ax = plotting.subplots(width=3, height=2)
        ax.plot(range(n), "o-")
        ax.set_title(f"n = {n}")
        return fig

    explore(update, n=(1, 3, 1))
    html = shown[0].data
    data = check_round_trip(html, update, list(seen))
    assert data["shape"] == [3] and data["labels"] == [["1", "2", "3"]]
    assert data["index"] == [1, 0, 2] and len(set(data["frames"])) == 3  # one frame per value
    page = Page()
    page.feed(html)
    (slider,) = [a for tag, a in page.tags if tag == "input"]
    assert (slider["type"], slider["min"], slider["max"], slider["value"]) == (
        "range",
        "0",
        "2",
        "1",
    )
    assert page.text["output"] == ["2"]  # the default's label
    assert [json.loads(text) for text in page.text["script"][:1]] == [data]


def test_labels_cannot_break_out_of_the_script_element(shown, monkeypatch):
    monkeypatch.setenv(widgets.MODE_ENV, "static")
    choices = ["plain", "a</script><b>bold</b>", "<!--<script>", "x</SCRIPT >y"]

    def update(kind="plain"):
        fig, ax = plotting.subplots(width=2, height=2)
        ax.set_title(kind)
        return fig

    explore(update, kind=choices)
    html = shown[0].data
    page = Page()
    page.feed(html)
    scripts = page.text["script"]
    assert len(scripts) == 2 and "<" not in scripts[0]  # nothing a parser could take for a tag
    assert json.loads(scripts[0])["labels"] == [choices]
    assert "function show()" in scripts[1]
    assert [t for t, _ in page.tags].count("b") == 0  # no label became markup
    options = page.text["option"]
    assert options == choices  # the dropdown shows them as text


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
        ({"a": (0, 10, 3)}, ValueError, "whole number >= 1.*got 3.33333 for \\(0, 10, 3\\)"),
        ({"a": (0, 1, 5)}, ValueError, "whole number >= 1.*got 0.2"),
        ({"a": (0.0, 1.0, 5.0)}, ValueError, "whole number >= 1.*got 0.2"),
        ({"a": (0.0, 1e-7, 1.0)}, ValueError, "whole number >= 1.*got 1e-07"),
        ({"a": LogSlider(1.0, 1.0 + 1e-13, 3)}, ValueError, "at least two values, distinct"),
    ],
)
@pytest.mark.parametrize("mode", ["live", "static"])
def test_bad_sliders_are_rejected(shown, monkeypatch, mode, sliders, error, match):
    monkeypatch.setenv(widgets.MODE_ENV, mode)

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
