import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib import ticker

from dl_course import plotting


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_subplots_sizes_and_style():
    fig, ax = plotting.subplots()
    assert tuple(fig.get_size_inches()) == pytest.approx(plotting.PANEL_SIZE)
    assert mpl.rcParams["axes.spines.top"] is False and mpl.rcParams["axes.titley"] == 1.0
    fig, axes = plotting.subplots(2, 3)
    assert axes.shape == (2, 3)
    assert fig.get_size_inches()[0] == pytest.approx(plotting.MAX_WIDTH)  # capped to the column
    fig, _ = plotting.subplots(width=3.0, height=2.0)
    assert tuple(fig.get_size_inches()) == pytest.approx((3.0, 2.0))


def test_scatter_classes_draws_one_collection_per_class():
    _, ax = plotting.subplots()
    plotting.scatter_classes(ax, [[0, 0], [1, 1], [2, 0]], [-1, 1, 1], s=50, lw=2)
    negative, positive = ax.collections
    assert len(negative.get_offsets()) == 1 and len(positive.get_offsets()) == 2
    assert negative.get_linewidths()[0] == 2  # aliases such as lw are understood
    assert [t.get_text() for t in ax.legend().get_texts()] == ["y = -1", "y = +1"]


def test_draw_hyperplane_lies_on_the_line():
    _, ax = plotting.subplots()
    ax.set(xlim=(-2, 2), ylim=(-2, 2))
    w, b = np.array([1.0, 2.0]), -0.5
    plotting.draw_hyperplane(ax, w, b, shade=True, lw=3)
    (line,) = ax.lines
    points = np.column_stack(line.get_data())
    assert np.allclose(points @ w + b, 0.0)
    assert line.get_linewidth() == 3 and len(ax.images) == 1
    assert ax.get_xlim() == (-2, 2)  # limits are kept


def test_steep_and_zero_hyperplanes():
    _, ax = plotting.subplots()
    ax.set(xlim=(0, 1), ylim=(0, 1))
    plotting.draw_hyperplane(ax, [1.0, 0.0], -0.5)  # vertical line x1 = 0.5
    assert np.allclose(ax.lines[0].get_xdata(), 0.5)
    plotting.draw_hyperplane(ax, [0.0, 0.0], 1.0)  # no line at all
    assert len(ax.lines) == 1


def test_draw_hyperplanes_uses_one_collection_and_skips_zero_rows():
    _, ax = plotting.subplots()
    ax.set(xlim=(-1, 1), ylim=(-1, 1))
    W = np.array([[1.0, 1.0], [0.0, 0.0], [1.0, -3.0]])
    plotting.draw_hyperplanes(ax, W, np.array([0.0, 1.0, 0.2]), color="grey")
    (collection,) = ax.collections
    segments = collection.get_segments()
    assert len(segments) == 2
    assert np.allclose(segments[1] @ W[2] + 0.2, 0.0)


def test_square_limits_are_equal_and_contain_the_points():
    _, ax = plotting.subplots()
    X = np.array([[0.0, 0.0], [4.0, 1.0]])
    plotting.square_limits(ax, X)
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert x1 - x0 == pytest.approx(y1 - y0)
    assert x0 < 0 and x1 > 4 and y0 < 0 and y1 > 1


def test_plain_log_ticks():
    _, ax = plotting.subplots()
    ax.loglog([0.01, 100], [1, 1000])
    plotting.plain_log_ticks(ax, "x")
    assert ax.xaxis.get_major_formatter()(0.01, 0) == "0.01"
    assert isinstance(ax.xaxis.get_minor_locator(), ticker.NullLocator)
    assert not isinstance(ax.yaxis.get_minor_locator(), ticker.NullLocator)
    with pytest.raises(ValueError, match="axis must be"):
        plotting.plain_log_ticks(ax, "z")


def test_class_colors():
    assert plotting.class_color(1) == plotting.CLASS_COLORS["positive"]
    assert plotting.class_color(0) == plotting.class_color(-1) == plotting.CLASS_COLORS["negative"]


@pytest.mark.parametrize(
    "action, error, match",
    [
        (lambda ax: plotting.scatter_classes(ax, [[0, 0, 0]], [1]), ValueError, "2 columns"),
        (
            lambda ax: plotting.scatter_classes(ax, [[0, 0]], [1, 1]),
            ValueError,
            "y must have shape",
        ),
        (lambda ax: plotting.draw_hyperplane(ax, [1.0, 2.0, 3.0]), ValueError, "length 2"),
        (lambda ax: plotting.draw_hyperplanes(ax, [[1.0, 2.0]], [0.0, 1.0]), ValueError, "shape"),
        (lambda ax: plotting.square_limits(ax, [1.0, 2.0]), ValueError, "X must be 2-D"),
        (lambda ax: plotting.subplots(0, 1), ValueError, "nrows must be >= 1"),
        (lambda ax: plotting.subplots(width=-1.0), ValueError, "width must be > 0"),
    ],
)
def test_bad_input(action, error, match):
    _, ax = plotting.subplots()
    with pytest.raises(error, match=match):
        action(ax)


def test_tile_images_places_each_image_with_gaps():
    images = np.arange(5 * 4, dtype=float).reshape(5, 4)  # five 2x2 images
    grid = plotting.tile_images(images, (2, 2), rows=2, gap=1)
    assert grid.shape == (5, 8)  # 2 rows of 3 tiles
    np.testing.assert_array_equal(grid[:2, 3:5], images[1].reshape(2, 2))
    np.testing.assert_array_equal(grid[3:5, 3:5], images[4].reshape(2, 2))
    assert np.isnan(grid[2]).all() and np.isnan(grid[3:5, 6:8]).all()
    with pytest.raises(ValueError, match="must have 9 columns"):
        plotting.tile_images(images, (3, 3))


def test_image_grid_draws_one_image_with_a_symmetric_scale():
    _, ax = plotting.subplots()
    plotting.image_grid(ax, [[-2.0, 1.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5]], (2, 2), labels="ab")
    (image,) = ax.images
    assert image.get_clim() == (-2.0, 2.0)
    assert [t.get_text() for t in ax.texts] == ["a", "b"]
    _, ax = plotting.subplots()
    plotting.image_grid(ax, [[0.0, 1.0, 0.0, 3.0]], (2, 2), symmetric=False, cmap="Greys")
    assert ax.images[0].get_clim() == (0.0, 3.0)


# -- graphs ------------------------------------------------------------------------------------

DIAMOND = [(), (0,), (0,), (1, 2), ()]  # 0 -> 1, 2 -> 3; node 4 stands alone


def test_graph_layout_puts_children_right_of_parents():
    where = plotting.graph_layout(DIAMOND)
    assert where.shape == (5, 2)
    for child, row in enumerate(DIAMOND):
        assert all(where[p, 0] < where[child, 0] for p in row)
    np.testing.assert_array_equal(where[:, 0], [0, 1, 1, 2, 2])  # as late as children allow
    assert where[1, 1] == 0.5 and where[2, 1] == -0.5  # a column is centred, in order
    chain = plotting.graph_layout([(), (0,), (1,)])
    np.testing.assert_array_equal(chain, [[0, 0], [1, 0], [2, 0]])


def test_draw_graph_draws_boxes_notes_and_one_arrow_per_edge():
    _, ax = plotting.subplots()
    parents = [(), (0, 0), (1,)]  # a repeated parent (x * x) is one arrow
    where = plotting.draw_graph(ax, parents, ["x", "x*x", "y"], notes=["1", "2", "3"])
    arrows = [t for t in ax.texts if isinstance(t, mpl.text.Annotation)]
    boxes = [t for t in ax.texts if t.get_bbox_patch() is not None]
    assert len(arrows) == 2
    assert [t.get_text() for t in boxes] == ["x", "x*x", "y"]
    assert {"1", "2", "3"} <= {t.get_text() for t in ax.texts}
    edges = [mpl.colors.to_hex(b.get_bbox_patch().get_edgecolor()) for b in boxes]
    assert edges == [plotting.PALETTE[c].lower() for c in ("blue", "grey", "orange")]
    assert not ax.axison and ax.get_xlim()[0] < where[:, 0].min()
    _, ax = plotting.subplots()
    plotting.draw_graph(ax, parents, ["a", "b", "c"], colors=["red"] * 3)
    boxes = [t for t in ax.texts if t.get_bbox_patch() is not None]
    assert mpl.colors.to_hex(boxes[0].get_bbox_patch().get_edgecolor()) == "#d55e00"


@pytest.mark.parametrize(
    "parents, labels, error, match",
    [
        ([], [], ValueError, "non-empty list"),
        ([(), (1,)], ["a", "b"], ValueError, "indices of earlier nodes"),
        ([(), (-1,)], ["a", "b"], ValueError, "indices of earlier nodes"),
        ([(), 0], ["a", "b"], TypeError, "parents\\[1\\] must be a sequence"),
        ([(), (0,)], ["a"], ValueError, "labels must have one entry per node"),
    ],
)
def test_draw_graph_rejects_bad_input(parents, labels, error, match):
    _, ax = plotting.subplots()
    with pytest.raises(error, match=match):
        plotting.draw_graph(ax, parents, labels)
