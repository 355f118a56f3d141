"""The assignments: otter assign builds them, solutions get full marks, wrong answers do not."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
MASTERS = sorted((ROOT / "exercises").glob("*/*.ipynb"))
OTTER = Path(sys.executable).parent / "otter"
#: Per assignment: an answer that passes the public tests of a question but not the hidden ones.
WRONG_ANSWERS = {
    "part1_foundations": (
        "q2_slow_perceptron",
        "def slow_data_set",
        "def slow_data_set():\n    return np.array([[1.0, 0.0], [-1.0, 0.0]]), np.array([1, -1])\n",
    ),
}


def grade(autograder: Path, notebook: Path, out: Path) -> dict[str, tuple[float, float]]:
    """Run otter's local grader; return (score, max score) for every question."""
    out.mkdir()
    command = [str(OTTER), "run", "-a", str(autograder), "-o", str(out), str(notebook)]
    subprocess.run(command, check=True, capture_output=True)
    results = json.loads((out / "results.json").read_text())
    return {t["name"]: (t["score"], t["max_score"]) for t in results["tests"] if "score" in t}


@pytest.fixture(scope="module", params=MASTERS, ids=lambda p: p.parent.name)
def assignment(request, tmp_path_factory):
    """Run otter assign once per master notebook: (name, solved notebook, student, autograder)."""
    dist = tmp_path_factory.mktemp(request.param.parent.name) / "dist"
    command = [str(OTTER), "assign", str(request.param), str(dist)]
    subprocess.run(command, check=True, capture_output=True)
    (autograder,) = (dist / "autograder").glob("*.zip")
    (solved,) = (dist / "autograder").glob("*.ipynb")
    (student,) = (dist / "student").glob("*.ipynb")
    return request.param.parent.name, solved, student, autograder


def test_solutions_get_full_marks(assignment, tmp_path):
    _, solved, _, autograder = assignment
    scores = grade(autograder, solved, tmp_path / "graded")
    assert scores and all(score == top > 0 for score, top in scores.values())


def test_students_see_no_solutions_or_hidden_tests(assignment):
    _, _, student, _ = assignment
    source = "\n".join(cell.source for cell in nbformat.read(student, as_version=4).cells)
    assert "BEGIN SOLUTION" not in source and "hidden: true" not in source
    assert "..." in source


def test_blank_student_notebook_scores_zero(assignment, tmp_path):
    _, _, student, autograder = assignment
    scores = grade(autograder, student, tmp_path / "graded")
    assert scores and all(score == 0 for score, _ in scores.values())


def test_hidden_tests_catch_an_answer_that_passes_the_public_ones(assignment, tmp_path):
    name, solved, _, autograder = assignment
    question, cell_start, wrong = WRONG_ANSWERS[name]
    nb = nbformat.read(solved, as_version=4)
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(cell_start)]
    cell.source = wrong
    nbformat.write(nb, tmp_path / "submission.ipynb")
    scores = grade(autograder, tmp_path / "submission.ipynb", tmp_path / "graded")
    score, top = scores.pop(question)
    assert 0 < score < top  # the public test passes, the hidden one fails
    assert all(s == t for s, t in scores.values())
