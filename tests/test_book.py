"""Checks on the book as a whole: notebook hygiene, the table of contents, cheap imports."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from build_book import build_stamp, cache_has_live_widgets
from check_site import check_site, code_trees, explore_calls
from nbval.plugin import find_comment_markers
from notebooks import CHECK_MARK, cleaned, problems

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("*/*.ipynb"))


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


def test_every_chapter_is_in_the_table_of_contents():
    pages = sorted(ROOT.glob("chapters/*.md"))
    assert sorted(toc_files()) == sorted(f"chapters/{p.stem}" for p in CHAPTERS + pages)


@pytest.mark.parametrize("path", CHAPTERS + EXERCISES, ids=lambda p: p.stem)
def test_notebook_is_clean(path):
    assert problems(path) == []


def checked_by_nbval(source: str) -> bool:
    """True if nbval reads ``# NBVAL_CHECK_OUTPUT`` as a marker comment of the cell."""
    return ("check", True) in find_comment_markers(source)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_checks_its_claims(path):
    trees = code_trees(path)
    assert any(isinstance(node, ast.Assert) for t in trees for node in ast.walk(t)), (
        "no assert statement checks a claim"
    )
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert any(checked_by_nbval(c.source) for c in cells), "no seeded output is compared by nbval"
    assert explore_calls(path) > 0, "no interactive figure"


def test_claim_checks_are_real_code_not_words(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("assert x; explore(update); # NBVAL_CHECK_OUTPUT"),
        nbformat.v4.new_code_cell(
            "%matplotlib inline\n# an assert would go here; explore( too\n"
            'note = "# NBVAL_CHECK_OUTPUT"\nprint(note)  # NBVAL_CHECK_OUTPUT'
        ),
        nbformat.v4.new_code_cell("!echo assert 1\nexplorer = 1"),
    ]
    path = tmp_path / "fake.ipynb"
    nbformat.write(nb, path)
    trees = code_trees(path)
    assert not any(isinstance(node, ast.Assert) for t in trees for node in ast.walk(t))
    assert explore_calls(path) == 0
    assert not any(checked_by_nbval(c.source) for c in nb.cells if c.cell_type == "code")
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "%%time\n# NBVAL_CHECK_OUTPUT\nassert widgets.explore(f) is None\nexplore(g)"
        )
    )
    nbformat.write(nb, path)
    trees = code_trees(path)
    assert sum(isinstance(node, ast.Assert) for t in trees for node in ast.walk(t)) == 1
    assert explore_calls(path) == 2
    assert checked_by_nbval(nb.cells[-1].source)


def test_cleaning_keeps_only_checked_text_outputs():
    nb = nbformat.v4.new_notebook()
    plain = nbformat.v4.new_code_cell("print(1)", execution_count=1)
    plain.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    checked = nbformat.v4.new_code_cell(f"{CHECK_MARK}\nx", execution_count=2)
    checked.outputs = [
        nbformat.v4.new_output("execute_result", data={"text/plain": "3", "image/png": "AAA"}),
        nbformat.v4.new_output("stream", name="stderr", text="warning\n"),
    ]
    checked.metadata = {"tags": ["hide-input"], "scrolled": True}
    nb.cells = [plain, checked]
    nb.metadata = {"kernelspec": {"name": "python3"}, "widgets": {"state": {}}}
    clean = cleaned(nb)
    assert clean.cells[0].outputs == [] and clean.cells[0].execution_count is None
    assert [o.data for o in clean.cells[1].outputs] == [{"text/plain": "3"}]
    assert clean.cells[1].execution_count == 2 and clean.cells[1].metadata == {
        "tags": ["hide-input"]
    }
    assert clean.metadata == {"kernelspec": {"name": "python3"}}


def test_unrun_checked_cell_is_reported(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"{CHECK_MARK}\nprint(2)")]
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    (found,) = problems(path)
    assert "no stored output" in found


#: Modules that draw or show figures: they may load matplotlib when imported.
DRAWING_MODULES = ("dl_course.plotting", "dl_course.widgets")
_IMPORT_EVERY_MODULE = """
import importlib, json, os, pkgutil, sys
import dl_course

def walk(folder, prefix):  # like pkgutil.walk_packages, without importing anything
    for module in pkgutil.iter_modules([folder], prefix):
        yield module.name
        if module.ispkg:
            yield from walk(os.path.join(folder, module.name.rpartition(".")[2]), module.name + ".")

heavy = ("torch", "matplotlib", "sklearn")
names = sorted(walk(dl_course.__path__[0], "dl_course."))
found = {}
for name in names:
    if name in sys.argv[1:]:
        continue
    importlib.import_module(name)
    loaded = [h for h in heavy if h in sys.modules and h not in sum(found.values(), [])]
    if loaded:
        found[name] = loaded
print(json.dumps({"modules": names, "heavy": found}))
"""


def test_import_dl_course_is_cheap():
    """Importing any module of the package (but the drawing ones) loads no torch,
    matplotlib or scikit-learn; each function imports those when it needs them."""
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_EVERY_MODULE, *DRAWING_MODULES],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(result.stdout)
    expected = {f"dl_course.{p.stem}" for p in (ROOT / "dl_course").glob("*.py")} - {
        "dl_course.__init__"
    }
    assert expected <= set(report["modules"])  # the walk found every module
    if (ROOT / "dl_course" / "theory").is_dir():
        assert any(m.startswith("dl_course.theory.") for m in report["modules"])
    assert report["heavy"] == {}, f"these modules load heavy libraries: {report['heavy']}"


def test_site_check_flags_remote_assets_and_heavy_pages(tmp_path):
    (tmp_path / "_static" / "mathjax").mkdir(parents=True)
    (tmp_path / "_static" / "mathjax" / "tex-chtml.js").write_text("")
    (tmp_path / "good.html").write_text(
        '<script src="_static/x.js"></script><a href="https://a.org">link</a>'
    )
    assert check_site(tmp_path) == []
    (tmp_path / "bad.html").write_text('<script src="https://cdn.example.com/x.js"></script>')
    (tmp_path / "big.html").write_text("x" * (8 * 1024 * 1024 + 1))
    found = check_site(tmp_path)
    assert any("cdn.example.com" in p for p in found)
    assert any("big.html" in p and "8 MB" in p for p in found)


def test_site_check_flags_an_inline_thebe_loader(tmp_path):
    (tmp_path / "_static" / "mathjax").mkdir(parents=True)
    (tmp_path / "_static" / "mathjax" / "tex-chtml.js").write_text("")
    (tmp_path / "page.html").write_text(
        '<script>const THEBE_JS_URL = "https://unpkg.com/thebe@0.8.2/lib/index.js"</script>'
    )
    found = check_site(tmp_path)
    assert any("THEBE_JS_URL" in p for p in found) and any("unpkg.com" in p for p in found)


# -- the site check on small fixture sites ---------------------------------------------------

MATHJAX = '<script defer="defer" src="../_static/mathjax/tex-chtml.js"></script>'


def page(body: str, head: str = MATHJAX) -> str:
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>"


@pytest.fixture
def site(tmp_path):
    """An empty built site with MathJax vendored, and a source folder for chapters."""
    html = tmp_path / "html"
    (html / "_static" / "mathjax").mkdir(parents=True)
    (html / "_static" / "mathjax" / "tex-chtml.js").write_text("")
    (html / "chapters").mkdir()
    (tmp_path / "book" / "chapters").mkdir(parents=True)
    return html, tmp_path / "book"


@pytest.fixture(scope="module")
def figure_html():
    """The HTML of a real static interactive figure with two sliders."""
    import os

    import matplotlib.pyplot as plt

    from dl_course import plotting, widgets

    def update(n=2, kind="a"):
        fig, ax = plotting.subplots(width=2, height=1.5)
        ax.set_title(f"{kind} {n}")
        return fig

    shown, before = [], (widgets._display, os.environ.get(widgets.MODE_ENV))
    widgets._display = shown.append
    os.environ[widgets.MODE_ENV] = "static"
    try:
        widgets.explore(update, n=(1, 3, 1), kind=["a", "b"])
    finally:
        widgets._display = before[0]
        if before[1] is None:
            del os.environ[widgets.MODE_ENV]
        else:
            os.environ[widgets.MODE_ENV] = before[1]
        plt.close("all")
    return shown[0].data


def write_chapter(book, stem: str, *sources: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("Move the slider: `explore(update, a=...)`.")]
    nb.cells += [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nb, book / "chapters" / f"{stem}.ipynb")


def test_site_check_passes_a_good_site(site, figure_html):
    html, book = site
    write_chapter(book, "01_x", "%matplotlib inline\nexplore(update, n=(1, 3, 1))")
    (html / "chapters" / "01_x.html").write_text(page(f"<p>$$x^2$$</p>{figure_html}"))
    assert check_site(html, book) == []


def test_site_check_wants_vendored_mathjax_for_math(site):
    html, _ = site
    (html / "plain.html").write_text(page("<p>no math here</p>", head=""))
    (html / "display.html").write_text(page("<p>$$x^2$$</p>", head=""))
    (html / "inline.html").write_text(page("<p>\\(x\\)</p>", head=""))
    (html / "remote.html").write_text(
        page("<p>\\[x\\]</p>", head='<script src="https://cdn.example.org/mathjax/tex-chtml.js">')
    )
    found = check_site(html)
    flagged = sorted(p.split()[0] for p in found if "does not load the vendored MathJax" in p)
    assert flagged == ["display.html", "inline.html", "remote.html"]
    assert any("remote.html loads https://cdn.example.org" in p for p in found)
    (html / "_static" / "mathjax" / "tex-chtml.js").unlink()
    assert "MathJax is not vendored into _static/mathjax" in check_site(html)


@pytest.mark.parametrize(
    "damage, problem",
    [
        (
            lambda h: re.sub(r'<script type="application/json".*?</script>', "", h),
            "lost its frames",
        ),
        (lambda h: re.sub(r'("index":\[)\d+', r"\g<1>99", h), "an index points past its"),
        (lambda h: re.sub(r'"frames":\["",".*?"', '"frames":["",""', h), "some frames are empty"),
        (lambda h: h.replace('"shape":[3,2]', '"shape":[3,3]'), "shape and labels disagree"),
        (lambda h: h.replace("data:image/png;base64,", "x.png#", 1), "has no picture"),
        (lambda h: re.sub(r"<select.*?</select>", "", h), "has 1 controls for a grid of 2"),
    ],
)
def test_site_check_flags_a_figure_without_its_frames(site, figure_html, damage, problem):
    html, book = site
    broken = damage(figure_html)
    assert broken != figure_html
    write_chapter(book, "01_x", "explore(update, n=(1, 3, 1))")
    (html / "chapters" / "01_x.html").write_text(page(broken))
    found = check_site(html, book)
    assert any(p.startswith("01_x.html: interactive figure 1 ") and problem in p for p in found)
    assert any("shows 0 static interactive figures" in p for p in found)


def test_site_check_rejects_ipywidgets(site):
    html, _ = site
    view = '<script type="application/vnd.jupyter.widget-view+json">{"model_id": "1"}</script>'
    state = '<script type="application/vnd.jupyter.widget-state+json">{"state": {}}</script>'
    (html / "view.html").write_text(page(view))
    (html / "state.html").write_text(page("", head=MATHJAX + state))
    (html / "prose.html").write_text(
        page("<p>Live widgets are <code>application/vnd.jupyter.widget-view+json</code></p>")
    )
    found = check_site(html)
    assert sorted(p.split()[0] for p in found) == ["state.html", "view.html"]
    assert all("ipywidgets" in p and "DL_COURSE_WIDGETS=static" in p for p in found)


def test_site_check_counts_the_explore_calls_of_each_chapter(site, figure_html):
    html, book = site
    write_chapter(
        book,
        "01_x",
        "from dl_course import widgets\nwidgets.explore(update, n=(1, 3, 1))",
        "# explore(not, a, call)\nexplore(update, n=(1, 3, 1))",
    )
    write_chapter(book, "02_y", 'print("explore(")')
    write_chapter(book, "03_z", "explore(update, n=(1, 3, 1))")
    (html / "chapters" / "01_x.html").write_text(page(figure_html))  # one of two
    (html / "chapters" / "02_y.html").write_text(page("<p>no figures</p>"))
    found = check_site(html, book)
    assert len(found) == 2
    assert "chapters/01_x.html shows 1 static interactive figures with frames, but " in found[0]
    assert "chapters/01_x.ipynb calls explore 2 times" in found[0]
    assert found[1] == "chapters/03_z.ipynb has no built page chapters/03_z.html"
    (html / "chapters" / "01_x.html").write_text(page(figure_html * 2))
    (html / "chapters" / "03_z.html").write_text(page(figure_html))
    assert check_site(html, book) == []
    assert check_site(html) == []  # without the sources, the count is not checked
    (html / "chapters" / "03_z.html").write_text(page(figure_html * 2))
    (found,) = check_site(html, book)
    assert "shows 2 static interactive figures" in found and "explore 1 times" in found


def test_build_restarts_from_scratch_after_a_live_widget_run(tmp_path):
    assert json.loads(build_stamp())["widgets"] == "static"  # switching mode changes the stamp
    assert not cache_has_live_widgets(tmp_path)  # no cache yet
    executed = tmp_path / ".jupyter_cache" / "executed" / "abc123"
    executed.mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("explore(update, n=(1, 3, 1))")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": "<div></div>"})]
    nb.cells = [cell]
    nbformat.write(nb, executed / "base.ipynb")
    assert not cache_has_live_widgets(tmp_path)
    view = {"model_id": "1", "version_major": 2, "version_minor": 0}
    cell.outputs.append(
        nbformat.v4.new_output(
            "display_data",
            data={"text/plain": "VBox()", "application/vnd.jupyter.widget-view+json": view},
        )
    )
    nbformat.write(nb, executed / "base.ipynb")
    assert cache_has_live_widgets(tmp_path)


@pytest.mark.parametrize("path", [p for p in CHAPTERS if 1 <= int(p.stem[:2]) <= 22], ids=lambda p: p.stem)
def test_chapter_points_to_assignments_that_exist(path):
    text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
    folders = set(re.findall(r"`exercises/(\w+)`", text))
    assert folders, f"{path.name} names no assignment"
    for folder in folders:
        assert list((ROOT / "exercises" / folder).glob("*.ipynb")), f"{path.name}: no exercises/{folder}"


def test_every_glossary_term_is_linked_at_its_first_use():
    from glossary import unlinked

    assert unlinked() == []
