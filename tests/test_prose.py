"""The prose of every chapter reports measured numbers through glue, never typed by hand."""

import ast
from pathlib import Path

import nbformat
import pytest
from prose import glue_keys_used, plain_prose, problems, unglued_numbers

from dl_course import report

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))


def glued_names(nb) -> set[str]:
    """The names that the code cells of ``nb`` pass to ``glue(name=...)``."""
    names = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        source = "\n".join(
            line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!"))
        )
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "glue":
                names |= {k.arg for k in node.keywords if k.arg}
    return names


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_measured_number_is_typed_into_the_prose(path):
    assert problems(path) == []


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_glue_role_has_a_glued_value(path):
    nb = nbformat.read(path, as_version=4)
    used = set().union(*(glue_keys_used(c.source) for c in nb.cells if c.cell_type == "markdown"))
    assert used <= glued_names(nb), f"glued by no code cell: {sorted(used - glued_names(nb))}"


@pytest.mark.parametrize(
    "text",
    [
        "the test accuracy dips to 0.75 at epoch 5",
        "and its takeaways say about 97 % accuracy",
        "the bound was loose by a factor of 4 or more",
        "a learning rate of 1.0 left 28 dead units",
        "it made 12 updates before stopping",
        "the ratio lay between 0.3 and\n1.2 on this machine",
        "```{admonition} A note\n:class: warning\nthe accuracy reached 0.93 here\n```",
    ],
)
def test_typed_measurements_are_found(text):
    assert unglued_numbers(text)


@pytest.mark.parametrize(
    "text",
    [
        "the accuracy is {glue:text}`acc:.2f` at epoch {glue:text}`dip_epoch:d`",
        "with learning rate $\\eta = 0.1$ the loss falls",
        "scores $s = (3.2, 5.1, -1.7)$ give a loss of {glue:text}`loss:.2f` nats",
        "the loss `0.5 * (y - t) ** 2` is smooth",
        "see chapter 5 and section 2.3 for the loss",
        "```python\nloss = 0.25\n```",
        "```\nloss = 0.25\n```",
        "$$\nL = 0.5 \\cdot \\text{loss}\n$$",
        "## Step 2: two steps make a bump",
    ],
)
def test_math_code_glue_and_plain_numbers_pass(text):
    assert unglued_numbers(text) == []


def test_plain_prose_blanks_math_and_roles_but_keeps_offsets():
    text = "a $x = 1.5$ b {footcite}`key2020` c"
    assert len(plain_prose(text)) == len(text)
    assert "1.5" not in plain_prose(text) and "key2020" not in plain_prose(text)


def test_glue_keys_are_read_from_roles():
    text = "{glue:text}`acc:.1%` and {glue:}`fig_a` and {glue:text}`n_dead`"
    assert glue_keys_used(text) == {"acc", "fig_a", "n_dead"}


def test_glue_stores_plain_numbers(monkeypatch):
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.extend(objs))
    report.glue(ratio=np.float64(0.25), count=np.int64(3), loss=torch.tensor(1.5), name="relu")
    texts = [next(iter(d.values())) for d in shown]
    assert texts == ["0.25", "3", "1.5", "'relu'"]  # np.float64(0.25) would not parse as a number


def test_glue_emits_what_myst_nb_glue_emits(monkeypatch):
    import IPython.display
    import myst_nb.ext.glue as myst_glue

    ours, theirs = [], []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: ours.append((objs, kw)))
    monkeypatch.setattr(myst_glue, "ipy_display", lambda *objs, **kw: theirs.append((objs, kw)))
    report.glue(acc=0.9625, label="tanh")
    myst_glue.glue("acc", 0.9625, display=False)
    myst_glue.glue("label", "tanh", display=False)
    assert ours == theirs


@pytest.mark.parametrize(
    ("values", "error", "match"),
    [
        ({}, ValueError, "at least one"),
        ({"x": float("nan")}, ValueError, "'x'"),
        ({"x": float("inf")}, ValueError, "no number"),
        ({"x": True}, TypeError, "real number or a string"),
        ({"x": [1, 2]}, TypeError, "list"),
    ],
)
def test_glue_refuses_what_the_prose_cannot_show(values, error, match):
    with pytest.raises(error, match=match):
        report.glue(**values)


def test_glue_refuses_names_a_role_cannot_use():
    with pytest.raises(ValueError, match="identifier"):
        report.glue(**{"a-b": 1.0})
