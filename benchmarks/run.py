"""Time every chapter and every slider against the book's budgets.

Each chapter in the table of contents is executed as the book build executes
it (static sliders, frames rendered); `dl_course.widgets` logs, for every
interactive figure, the median latency of a live slider move (update + draw +
PNG, 5 grid points) and the time and size of its static frames.

Budgets on the 2-core reference machine: a chapter under 60 s, all chapters
under 10 min, a slider move under 150 ms, a figure's frames under 10 s.

    python benchmarks/run.py                               # every chapter
    python benchmarks/run.py chapters/01_perceptron.ipynb  # some chapters
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
CHAPTER_BUDGET_S = 60.0
BOOK_BUDGET_S = 600.0
SLIDER_BUDGET_MS = 150.0
FRAMES_BUDGET_S = 10.0


def chapters() -> list[Path]:
    """Chapter notebooks in table-of-contents order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part["chapters"]]
    return [ROOT / f"{f}.ipynb" for f in files if (ROOT / f"{f}.ipynb").exists()]  # not the .md pages


def run_chapter(path: Path) -> tuple[float, list[dict]]:
    """Execute one chapter in static mode; return its wall time and its slider records."""
    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as log:
        log_path = Path(log.name)
    os.environ.update({"DL_COURSE_WIDGETS": "static", "DL_COURSE_BENCH_LOG": str(log_path)})
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    elapsed = time.perf_counter() - start
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    log_path.unlink()
    return elapsed, records


def main(argv: list[str]) -> int:
    """Benchmark the chapters named in ``argv`` (paths), or all of them."""
    selected = [Path(a).resolve() for a in argv] or chapters()
    failures, rows, total = [], [], 0.0
    print(f"{'chapter':<28} {'time':>7}   {'slider (update + draw)':<34} {'median':>7} {'max':>7} "
          f"{'frames':>7} {'page':>7}")
    for path in selected:
        elapsed, records = run_chapter(path)
        total += elapsed
        if elapsed > CHAPTER_BUDGET_S:
            failures.append(f"{path.stem} takes {elapsed:.1f} s (budget {CHAPTER_BUDGET_S:.0f} s)")
        print(f"{path.stem:<28} {elapsed:>6.1f}s")
        for r in records:
            name = f"{r['update']}({', '.join(r['sliders'])})"
            print(f"{'':<28} {'':>7}   {name:<34} {r['median_ms']:>5.0f}ms {r['max_ms']:>5.0f}ms "
                  f"{r.get('frames_s', 0):>6.1f}s {r.get('html_kb', 0):>5.0f}kB")
            if r["median_ms"] > SLIDER_BUDGET_MS:
                failures.append(f"{path.stem}: {name} answers in {r['median_ms']:.0f} ms "
                                f"(budget {SLIDER_BUDGET_MS:.0f} ms)")
            if r.get("frames_s", 0) > FRAMES_BUDGET_S:
                failures.append(f"{path.stem}: {name} frames take {r['frames_s']:.1f} s "
                                f"(budget {FRAMES_BUDGET_S:.0f} s)")
        rows.append({"chapter": path.stem, "seconds": elapsed, "sliders": records})
    print(f"{'all chapters':<28} {total:>6.1f}s")
    if total > BOOK_BUDGET_S:
        failures.append(f"all chapters take {total:.0f} s (budget {BOOK_BUDGET_S:.0f} s)")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps({"total_s": total, "chapters": rows}, indent=1))
    print("\n".join(["", *failures]) if failures else "\nall budgets met")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
