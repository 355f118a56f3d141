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
    "challenge_flat_sharp": (  # |lambda| instead of lambda: the sign of a negative top is lost
        "q1_power_iteration",
        "def power_iteration",
        "def power_iteration(loss_fn, params, iters=100, seed=0):\n"
        "    params = list(params)\n"
        "    grads = torch.autograd.grad(loss_fn(), params, create_graph=True)\n"
        "    v = [torch.ones_like(p) for p in params]\n"
        "    for _ in range(iters):\n"
        "        hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)\n"
        "        norm = torch.sqrt(sum((h**2).sum() for h in hv))\n"
        "        v = [h / norm for h in hv]\n"
        "    return float(norm)\n",
    ),
    "practice_mode_connectivity": (  # linear_sum_assignment minimizes unless told to maximize
        "q6_align",
        "def align",
        "def align(a, b):\n"
        "    out = [p.detach().clone() for p in b]\n"
        "    for k in range(a[0].shape[0]):\n"
        "        ua = torch.cat([a[0][k], a[1][k][:, None], a[2][k].T], dim=1)\n"
        "        ub = torch.cat([b[0][k], b[1][k][:, None], b[2][k].T], dim=1)\n"
        "        _, perm = scipy.optimize.linear_sum_assignment((ua @ ub.T).numpy())\n"
        "        out[0][k], out[1][k], out[2][k] = b[0][k][perm], b[1][k][perm], b[2][k][:, perm]\n"
        "    return out\n\n\n"
        "barrier_aligned = loss_barrier(linear_path_losses(net_a, align(net_a, net_b), TS, X, y), TS)\n",
    ),
    "practice_spectral_norm": (  # the right number from the library, not from power iteration
        "q1_power_iteration",
        "def top_singular",
        "def top_singular(W, iters=100, seed=0):\n"
        "    W = W.detach()\n"
        "    U, S, Vh = torch.linalg.svd(W)\n"
        "    return float(S[0]), U[:, 0], Vh[0]\n",
    ),
    "part2_optimization": (  # linear decay after the warm-up: right end points, wrong shape
        "q3_warmup_cosine",
        "def warmup_cosine",
        "def warmup_cosine(lr0, t, warmup, t_max, lr_min=0.0):\n"
        "    if t < warmup:\n        return lr0 * t / warmup\n"
        "    progress = min(t - warmup, t_max - warmup) / (t_max - warmup)\n"
        "    return lr0 + (lr_min - lr0) * progress\n",
    ),
    "part3_stability": (  # each tensor clipped on its own: right for a single tensor only
        "q1_clip_by_norm",
        "def clip_by_norm",
        "def clip_by_norm(grads, max_norm):\n"
        "    norms = [float(np.linalg.norm(g)) for g in grads]\n"
        "    clipped = [g * min(1.0, max_norm / (n + 1e-6)) for g, n in zip(grads, norms)]\n"
        "    return clipped, float(np.sqrt(sum(n**2 for n in norms)))\n",
    ),
    "part4_generalization": (  # threshold alpha instead of step * alpha: right only for step = 1
        "q1_ista_step",
        "def ista_step",
        "def ista_step(X, y, w, alpha, step):\n"
        "    v = w - step * X.T @ (X @ w - y) / len(y)\n"
        "    return np.sign(v) * np.maximum(np.abs(v) - alpha, 0.0)\n",
    ),
    "part5_geometry": (  # normalized columns instead of an orthonormal basis
        "q5_subspace_alignment",
        "def alignment",
        "def alignment(U, V):\n"
        "    U, V = U / np.linalg.norm(U, axis=0), V / np.linalg.norm(V, axis=0)\n"
        "    return float(np.sum((U.T @ V) ** 2) / U.shape[1])\n",
    ),
    "part7_robustness": (  # the mean over bins, not weighted by the share of examples
        "q3_ece",
        "def ece",
        "def ece(probs, labels, n_bins=15):\n"
        "    conf, correct = probs.max(axis=1), probs.argmax(axis=1) == labels\n"
        "    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)\n"
        "    used = [k for k in range(n_bins) if np.any(bins == k)]\n"
        "    return float(np.mean([abs(correct[bins == k].mean() - conf[bins == k].mean())"
        " for k in used]))\n",
    ),
    "part6_modern_theory": (  # a straight line on log-log axes: right without a floor only
        "q5_profile_fit",
        "def profile_fit",
        "def profile_fit(n, loss):\n"
        "    slope, intercept = np.polyfit(np.log(n), np.log(loss), 1)\n"
        "    return float(np.exp(intercept)), float(-slope), 0.0\n",
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
