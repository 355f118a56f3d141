"""Checks on the book as a whole: notebook hygiene, the table of contents, cheap imports."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from check_site import check_site
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
    assert sorted(toc_files()) == sorted(f"chapters/{p.stem}" for p in CHAPTERS)


@pytest.mark.parametrize("path", CHAPTERS + EXERCISES, ids=lambda p: p.stem)
def test_notebook_is_clean(path):
    assert problems(path) == []


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_checks_its_claims(path):
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert any("assert " in c.source for c in cells), "no assert checks a claim"
    assert any(CHECK_MARK in c.source for c in cells), "no seeded output is compared by nbval"
    assert any("explore(" in c.source for c in cells), "no interactive figure"


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


def test_import_dl_course_is_cheap():
    code = "import sys, dl_course; print(sorted(m for m in ('torch', 'matplotlib', 'sklearn') if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.replace("'", '"')) == []


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
