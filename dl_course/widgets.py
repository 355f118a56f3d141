"""Interactive figures that work in a live notebook and on the static website.

:func:`explore` is the one way chapters make a figure interactive. It runs the
figure's ``update`` function once with its defaults (so an error surfaces at
once, and nbval catches it), then shows either

- live ipywidgets controls wired to ``update`` (the default, in Jupyter), or
- when the environment variable ``DL_COURSE_WIDGETS=static`` is set (``make book``
  sets it), a self-contained HTML figure: ``update`` is run at build time for
  every point of a grid of control values and the controls swap between these
  pre-rendered frames with a few lines of our own JavaScript. No kernel, no CDN.

Setting ``DL_COURSE_BENCH_LOG`` to a file path makes every call append one JSON
line with the measured update latency (``make bench`` uses this).

This module knows nothing about deep learning.
"""

from __future__ import annotations

import base64
import hashlib
import html
import inspect
import io
import itertools
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dl_course._checks import check_int, check_real

MODE_ENV = "DL_COURSE_WIDGETS"
MAX_FRAMES_ENV = "DL_COURSE_MAX_FRAMES"
BENCH_ENV = "DL_COURSE_BENCH_LOG"
#: Largest number of frames one static figure may hold; sliders are thinned to fit.
DEFAULT_MAX_FRAMES = 60
#: Resolution of static frames, in dots per inch (the live figure uses the style's dpi).
FRAME_DPI = 96

_counter = itertools.count(1)


@dataclass(frozen=True)
class LogSlider:
    """A slider over ``num`` log-spaced values from ``low`` to ``high`` (both > 0).

    Use it for rates and scales: ``explore(update, lr=LogSlider(1e-3, 1.0, 7))``.
    """

    low: float
    high: float
    num: int = 13

    def __post_init__(self):
        low = check_real(self.low, "LogSlider low", low=0.0, low_open=True)
        check_real(self.high, "LogSlider high", low=low, low_open=True)
        check_int(self.num, "LogSlider num", low=2)


@dataclass(frozen=True)
class _Control:
    name: str
    kind: str  # "int", "float", "log" or "choice"
    values: tuple
    default_index: int

    @property
    def default(self):
        return self.values[self.default_index]

    def label(self, value) -> str:
        if self.kind == "choice" or self.kind == "int":
            return str(value)
        return f"{value:.4g}"

    def nearest(self, value):
        """The grid value closest to ``value`` (live sliders report values with round-off)."""
        if self.kind == "choice":
            return value
        grid = np.asarray(self.values, dtype=float)
        distance = (
            np.abs(np.log(grid) - np.log(value)) if self.kind == "log" else np.abs(grid - value)
        )
        return self.values[int(np.argmin(distance))]


def _grid_values(name: str, spec) -> tuple[str, tuple]:
    """Turn a slider spec into its kind and the tuple of values it offers."""
    if isinstance(spec, list):
        if not spec:
            raise ValueError(f"slider {name!r}: a list of choices must not be empty")
        if len(set(map(repr, spec))) != len(spec):
            raise ValueError(f"slider {name!r}: the choices must be distinct, got {spec}")
        return "choice", tuple(spec)
    if isinstance(spec, LogSlider):
        values = np.geomspace(spec.low, spec.high, spec.num)
        kind = "log"
    elif isinstance(spec, tuple) and len(spec) == 3:
        kind, values = _range_values(name, spec)
    else:
        raise TypeError(
            f"slider {name!r} must be a (low, high, step) tuple, a list of choices or a "
            f"LogSlider, got {spec!r}"
        )
    if kind != "int":
        values = [float(f"{v:.12g}") for v in values]
    if len(set(values)) < 2 or len(set(values)) != len(values):
        raise ValueError(
            f"slider {name!r} must offer at least two values, distinct at 12 significant "
            f"digits; got {spec!r}"
        )
    return kind, tuple(values)


def _range_values(name: str, spec: tuple) -> tuple[str, list]:
    """The values of a ``(low, high, step)`` slider: the step must divide the range."""
    low, high, step = spec
    if all(isinstance(v, int) and not isinstance(v, bool) for v in spec):
        if step <= 0 or high <= low:
            raise ValueError(f"slider {name!r}: need low < high and step > 0, got {spec}")
        kind, count = "int", (high - low) / step
        whole = (high - low) % step == 0
    else:
        low = check_real(low, f"slider {name!r} low")
        high = check_real(high, f"slider {name!r} high", low=low, low_open=True)
        step = check_real(step, f"slider {name!r} step", low=0.0, low_open=True)
        kind, count = "float", (high - low) / step
        whole = abs(count - round(count)) <= 1e-6 and round(count) >= 1
    if not whole:
        raise ValueError(
            f"slider {name!r}: (high - low) / step must be a whole number >= 1, so that the "
            f"slider runs from low to high; got {count:.6g} for {spec}"
        )
    if kind == "int":
        return kind, list(range(low, high + 1, step))
    return kind, list(low + step * np.arange(round(count) + 1))


def _controls(update: Callable, sliders: dict) -> list[_Control]:
    """Validate ``update`` and the slider specs; return one control per slider."""
    if not callable(update):
        raise TypeError(f"update must be callable, got {type(update).__name__}")
    if not sliders:
        raise ValueError(
            "explore needs at least one slider, e.g. explore(update, lr=(0.1, 1.0, 0.1))"
        )
    params = inspect.signature(update).parameters
    controls = []
    for name, spec in sliders.items():
        if name not in params:
            raise ValueError(f"slider {name!r} is not a parameter of update; it has {list(params)}")
        default = params[name].default
        if default is inspect.Parameter.empty:
            raise ValueError(
                f"parameter {name!r} of update needs a default: the slider starts there"
            )
        kind, values = _grid_values(name, spec)
        if kind == "choice":
            matches = [i for i, v in enumerate(values) if v == default]
        else:
            if isinstance(default, bool) or not isinstance(default, int | float):
                raise TypeError(f"the default of {name!r} must be a number, got {default!r}")
            matches = [
                i
                for i, v in enumerate(values)
                if math.isclose(v, default, rel_tol=1e-9, abs_tol=1e-12)
            ]
        if not matches:
            shown = [_Control(name, kind, values, 0).label(v) for v in values]
            raise ValueError(
                f"the default {default!r} of {name!r} is not one of the slider's values {shown}"
            )
        controls.append(_Control(name, kind, values, matches[0]))
    for name, param in params.items():
        required = param.default is inspect.Parameter.empty and param.kind not in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        )
        if required and name not in sliders:
            raise ValueError(f"parameter {name!r} of update has no default and no slider")
    return controls


def _mode() -> str:
    mode = os.environ.get(MODE_ENV, "live").strip().lower() or "live"
    if mode not in ("live", "static"):
        raise ValueError(
            f"environment variable {MODE_ENV} must be 'live' or 'static', got {mode!r}"
        )
    return mode


def _call(update: Callable, values: dict):
    """Run ``update`` and check that it returned a matplotlib figure."""
    from matplotlib.figure import Figure

    fig = update(**values)
    if not isinstance(fig, Figure):
        raise TypeError(f"update must return a matplotlib Figure, got {type(fig).__name__}")
    return fig


def _close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


def _display(obj) -> None:
    from IPython.display import display

    display(obj)


def explore(update: Callable[..., Any], **sliders) -> None:
    """Show the figure drawn by ``update`` with one control per keyword argument.

    Parameters
    ----------
    update : callable
        ``update(**values)`` draws and returns a :class:`matplotlib.figure.Figure`.
        Each controlled parameter needs a default value: the control starts there.
    **sliders
        One control per parameter of ``update``: a ``(low, high, step)`` tuple
        (ints give an integer slider), a :class:`LogSlider` for log-spaced values,
        or a list of choices (a dropdown).

    ``update`` runs once with its defaults before anything is shown, and an
    exception there propagates. In a live kernel the controls are ipywidgets;
    with ``DL_COURSE_WIDGETS=static`` (the book build) they are plain HTML and
    JavaScript switching between frames rendered over a grid of the values (at
    most ``DL_COURSE_MAX_FRAMES`` frames, default 60; sliders are thinned evenly,
    keeping their ends and default, to fit, and a grid that cannot fit that way
    is a ``ValueError``).

    A slider must offer at least two values; a ``(low, high, step)`` step must
    divide ``high - low`` (else ``ValueError``).

    Examples
    --------
    >>> def update(freq=1.0):  # doctest: +SKIP
    ...     fig, ax = plotting.subplots()
    ...     x = np.linspace(0, 1, 200)
    ...     ax.plot(x, np.sin(2 * np.pi * freq * x))
    ...     return fig
    >>> explore(update, freq=(0.5, 3.0, 0.5))  # doctest: +SKIP
    """
    controls = _controls(update, sliders)
    mode = _mode()
    defaults = {c.name: c.default for c in controls}
    fig = _call(update, defaults)
    start = time.perf_counter()
    if mode == "static":
        shown = _static_figure(update, controls, fig)
        build = {"frames_s": time.perf_counter() - start, "html_kb": len(shown.data) / 1024}
    else:
        shown = _live_figure(update, controls, fig)
        build = {}
    _close(fig)
    _display(shown)
    if os.environ.get(BENCH_ENV):
        _log_latency(update, controls, os.environ[BENCH_ENV], build)


# -- live mode -------------------------------------------------------------------------------


def _live_widget(control: _Control):
    import ipywidgets as widgets

    common = {"description": control.name, "style": {"description_width": "initial"}}
    values = control.values
    if control.kind == "choice":
        return widgets.Dropdown(options=list(values), value=control.default, **common)
    common["continuous_update"] = False
    if control.kind == "int":
        return widgets.IntSlider(
            min=values[0],
            max=values[-1],
            step=values[1] - values[0],
            value=control.default,
            **common,
        )
    if control.kind == "log":
        low, high = math.log10(values[0]), math.log10(values[-1])
        return widgets.FloatLogSlider(
            min=low,
            max=high,
            step=(high - low) / (len(values) - 1),
            value=control.default,
            readout_format=".3g",
            **common,
        )
    step = values[1] - values[0]
    return widgets.FloatSlider(
        min=values[0],
        max=values[-1],
        step=step,
        value=control.default,
        readout_format=".3g",
        **common,
    )


def _live_figure(update: Callable, controls: list[_Control], first_fig):
    """ipywidgets controls above an Output area that ``update`` redraws."""
    import ipywidgets as widgets
    from IPython.display import Image

    inputs = [_live_widget(c) for c in controls]
    out = widgets.Output()
    with out:
        _display(Image(_png(first_fig)))
    layout = _layout(first_fig)

    def redraw(_change=None):
        values = {c.name: c.nearest(w.value) for c, w in zip(controls, inputs, strict=True)}
        with out:
            fig = _call(update, values)
            png = _png(fig, layout)
            _close(fig)
            out.clear_output(wait=True)
            _display(Image(png))

    for w in inputs:
        w.observe(redraw, names="value")
    row = widgets.HBox(inputs, layout=widgets.Layout(flex_flow="row wrap"))
    return widgets.VBox([row, out])


# -- static mode -----------------------------------------------------------------------------


def _kept(control: _Control) -> set[int]:
    """Indices a thinned slider must keep: both ends and the default."""
    return {0, len(control.values) - 1, control.default_index}


def _thinned(control: _Control, count: int) -> list[int]:
    """``count`` evenly spread indices into the control's values, ends and default kept.

    ``count`` must be at least ``len(_kept(control))`` (3 when the default is
    inside the range, 2 when it is an end). The default replaces the interior
    grid point nearest to it, never an end.
    """
    n = len(control.values)
    if not len(_kept(control)) <= count <= n:
        raise ValueError(
            f"slider {control.name!r}: cannot keep its ends and default in {count} of {n} values"
        )
    positions = np.linspace(0, n - 1, count).round().astype(int)
    default = control.default_index
    if default not in positions:
        interior = np.arange(1, count - 1)
        nearest = interior[np.argmin(np.abs(positions[interior] - default))]
        positions[nearest] = default
    return sorted(positions.tolist())


def _static_grid(controls: list[_Control], max_frames: int) -> list[list[int]]:
    """Indices of the values each control offers on the static page (product <= max_frames).

    The longest slider loses a value until the grid fits; no slider ever loses
    an end or its default, so a grid that cannot fit that way is an error.
    """
    choice_frames = math.prod(len(c.values) for c in controls if c.kind == "choice")
    if choice_frames > max_frames:
        raise ValueError(
            f"the dropdowns alone need {choice_frames} frames, more than the limit {max_frames}"
        )
    counts = [len(c.values) for c in controls]
    while math.prod(counts) > max_frames:
        thinnable = [
            j for j, c in enumerate(controls) if c.kind != "choice" and counts[j] > len(_kept(c))
        ]
        if not thinnable:
            needed = math.prod(
                len(c.values) if c.kind == "choice" else len(_kept(c)) for c in controls
            )
            raise ValueError(
                f"cannot fit the sliders into {max_frames} frames: keeping every slider's ends "
                f"and default needs {needed}; raise {MAX_FRAMES_ENV} or use fewer sliders"
            )
        j = max(thinnable, key=lambda k: counts[k])
        counts[j] -= 1
    return [
        list(range(len(c.values))) if n == len(c.values) else _thinned(c, n)
        for c, n in zip(controls, counts, strict=True)
    ]


def _layout(fig) -> list:
    """The axes positions of a drawn figure, to reuse for the next frames."""
    return [ax.get_position() for ax in fig.axes]


def _clipped(fig, renderer) -> bool:
    """True if some label or tick label of the drawn ``fig`` sticks out of the figure."""
    tight = fig.get_tightbbox(renderer)  # in inches; cheap after a draw (text is cached)
    width, height = fig.get_size_inches()
    slack = 0.01
    return (
        tight.x0 < -slack
        or tight.y0 < -slack
        or tight.x1 > width + slack
        or tight.y1 > height + slack
    )


def _rendered(fig, dpi: float, layout: list | None = None):
    """Draw ``fig`` with the Agg renderer at ``dpi``; return the pixels as a PIL RGB image.

    Constrained layout costs more than drawing the figure itself. Frames of one
    figure share their structure, so ``layout`` (the axes positions of the first
    frame, from :func:`_layout`) is reused when the number of axes matches. If a
    label then sticks out of the figure (wider tick labels, say), the frame is
    drawn again with its own layout.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    own_layout = fig.get_layout_engine()
    reuse = layout is not None and len(fig.axes) == len(layout)
    if reuse:
        fig.set_layout_engine("none")
        for ax, box in zip(fig.axes, layout, strict=True):
            ax.set_position(box)
    canvas.draw()
    if reuse and _clipped(fig, canvas.get_renderer()):
        fig.set_layout_engine(own_layout or "constrained")
        for ax in fig.axes:
            ax.set_in_layout(True)  # set_position took the axes out of the layout
        canvas.draw()
    size = canvas.get_width_height(physical=True)
    return Image.frombuffer("RGBA", size, canvas.buffer_rgba(), "raw", "RGBA", 0, 1).convert("RGB")


def _png(fig, layout: list | None = None) -> bytes:
    """The figure as PNG bytes at its own dpi, as a live slider shows it."""
    buffer = io.BytesIO()
    _rendered(fig, fig.get_dpi(), layout).save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


def _encode_png(fig, layout: list | None = None) -> str:
    """The figure at :data:`FRAME_DPI` as a base64 PNG with a 256-colour palette.

    The palette makes frames about 3x smaller than RGB PNGs, with no visible loss
    on line plots.
    """
    from PIL import Image

    image = _rendered(fig, FRAME_DPI, layout).quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    buffer = io.BytesIO()
    image.save(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


_SCRIPT = """(function () {
  var root = document.getElementById("%s");
  var data = JSON.parse(root.querySelector("script.dlc-data").textContent);
  var img = root.querySelector("img");
  var first = img.src;
  var inputs = root.querySelectorAll("[data-dlc]");
  function show() {
    var k = 0;
    for (var j = 0; j < inputs.length; j++) {
      var i = Number(inputs[j].value);
      k = k * data.shape[j] + i;
      var out = inputs[j].parentNode.querySelector("output");
      if (out) out.textContent = data.labels[j][i];
    }
    var frame = data.frames[data.index[k]];
    img.src = frame ? "data:image/png;base64," + frame : first;
  }
  for (var j = 0; j < inputs.length; j++) inputs[j].addEventListener("input", show);
})();"""


def _control_html(control: _Control, positions: list[int]) -> str:
    name = html.escape(control.name)
    start = positions.index(control.default_index)
    if control.kind == "choice":
        options = "".join(
            f'<option value="{i}"{" selected" if i == start else ""}>'
            f"{html.escape(control.label(control.values[p]))}</option>"
            for i, p in enumerate(positions)
        )
        return f'<label>{name} <select data-dlc aria-label="{name}">{options}</select></label>'
    label = html.escape(control.label(control.default))
    return (
        f'<label>{name} <input type="range" data-dlc aria-label="{name}" min="0" '
        f'max="{len(positions) - 1}" step="1" value="{start}" style="vertical-align:middle"> '
        f"<output>{label}</output></label>"
    )


def _static_figure(update: Callable, controls: list[_Control], first_fig):
    """Render every grid point and wrap the frames in self-contained HTML."""
    from IPython.display import HTML

    max_frames = check_int(
        int(os.environ.get(MAX_FRAMES_ENV, DEFAULT_MAX_FRAMES)), MAX_FRAMES_ENV, low=1
    )
    grid = _static_grid(controls, max_frames)
    default_key = tuple(c.default_index for c in controls)
    first = _encode_png(first_fig)
    layout = _layout(first_fig)
    frames = [""]  # frame 0 is the <img>'s own source
    seen = {first: 0}
    index = []
    for combo in itertools.product(*grid):
        if combo == default_key:
            index.append(0)
            continue
        fig = _call(update, {c.name: c.values[i] for c, i in zip(controls, combo, strict=True)})
        encoded = _encode_png(fig, layout)
        _close(fig)
        if encoded not in seen:
            seen[encoded] = len(frames)
            frames.append(encoded)
        index.append(seen[encoded])
    data = {
        "shape": [len(g) for g in grid],
        "labels": [[c.label(c.values[i]) for i in g] for c, g in zip(controls, grid, strict=True)],
        "index": index,
        "frames": frames,
    }
    # "<" only occurs inside JSON strings, where \u003c means the same: a label such as
    # "</script>" or "<!--" cannot end or derail the <script> element holding the payload.
    payload = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
    digest = hashlib.sha1((first + payload).encode()).hexdigest()[:10]
    element_id = f"dlc-{next(_counter)}-{digest}"
    names = ", ".join(c.name for c in controls)
    controls_html = "".join(_control_html(c, g) for c, g in zip(controls, grid, strict=True))
    return HTML(
        f'<div class="dlc-explore" id="{element_id}">'
        f'<div class="dlc-controls" style="display:flex;flex-wrap:wrap;gap:0.3em 1.5em;'
        f'align-items:center;margin:0.3em 0">{controls_html}</div>'
        f'<img src="data:image/png;base64,{first}" alt="Interactive figure: move {html.escape(names)}" '
        f'style="max-width:100%;height:auto">'
        f'<script type="application/json" class="dlc-data">{payload}</script>'
        f"<script>{_SCRIPT % element_id}</script></div>"
    )


# -- benchmark -------------------------------------------------------------------------------


def _log_latency(
    update: Callable, controls: list[_Control], path: str, extra: dict, repeats: int = 5
) -> None:
    """Append the median time of a live slider move (``update``, draw, PNG) at 5 grid points.

    ``extra`` (the static build time and size, if any) is added to the JSON record.
    """
    combos = list(itertools.product(*(range(len(c.values)) for c in controls)))
    picks = np.linspace(0, len(combos) - 1, repeats).round().astype(int)
    first = _call(update, {c.name: c.default for c in controls})
    _png(first)
    layout = _layout(first)
    _close(first)
    timings = []
    for k in picks:
        values = {c.name: c.values[i] for c, i in zip(controls, combos[k], strict=True)}
        start = time.perf_counter()
        fig = _call(update, values)
        _png(fig, layout)
        timings.append(time.perf_counter() - start)
        _close(fig)
    record = {
        "update": getattr(update, "__name__", type(update).__name__),
        "sliders": [c.name for c in controls],
        "median_ms": 1000 * statistics.median(timings),
        "max_ms": 1000 * max(timings),
    } | extra
    with open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")
