"""Keep the committed notebooks clean: no outputs except the checked ones.

A committed chapter carries no outputs, no execution counts and no editor
metadata, except the text outputs (and execution counts) of cells marked
``# NBVAL_CHECK_OUTPUT``:
nbval compares those with a fresh run (and silently skips a marked cell that
has no stored output, so that is an error here).

    python tools/notebooks.py check   chapters/*.ipynb   # list problems, exit 1 if any
    python tools/notebooks.py strip   chapters/*.ipynb   # clean in place
    python tools/notebooks.py refresh chapters/*.ipynb   # execute, store checked outputs, clean
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import nbformat

CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
_NOTEBOOK_KEYS = ("kernelspec", "language_info")
_CELL_KEYS = ("tags",)


def is_checked(cell) -> bool:
    """True for a code cell whose output nbval compares."""
    return cell.cell_type == "code" and CHECK_MARK in cell.source


def _text_only(output):
    """The output reduced to what nbval compares: stdout text or a text/plain result."""
    if output.output_type == "stream":
        return output if output.name == "stdout" else None
    if output.output_type in ("execute_result", "display_data") and "text/plain" in output.data:
        kept = copy.deepcopy(output)
        kept.data = {"text/plain": output.data["text/plain"]}
        kept.metadata = {}
        return kept
    return None


def cleaned(nb):
    """A copy of ``nb`` with only the outputs and metadata that belong in the repository."""
    nb = copy.deepcopy(nb)
    nb.metadata = {k: nb.metadata[k] for k in _NOTEBOOK_KEYS if k in nb.metadata}
    if "language_info" in nb.metadata:
        nb.metadata["language_info"] = {"name": nb.metadata["language_info"].get("name", "python")}
    for cell in nb.cells:
        cell.metadata = {k: cell.metadata[k] for k in _CELL_KEYS if k in cell.metadata}
        if cell.cell_type == "code":
            kept = [_text_only(o) for o in cell.outputs] if is_checked(cell) else []
            cell.outputs = [o for o in kept if o is not None]
            if not cell.outputs:  # nbval refuses stored outputs of a cell without a count
                cell.execution_count = None
    return nb


def problems(path: Path) -> list[str]:
    """What is wrong with the committed notebook at ``path`` (empty when clean)."""
    nb = nbformat.read(path, as_version=4)
    found = []
    if nb != cleaned(nb):
        found.append(
            f"{path}: has outputs or metadata that should be stripped "
            f"(run: python tools/notebooks.py strip {path})"
        )
    for cell in nb.cells:
        if is_checked(cell) and "glue(" in cell.source:
            found.append(
                f"{path}: a {CHECK_MARK} cell calls glue; its hidden output would differ from "
                "the stored one under nbval: glue in a cell of its own"
            )
        if is_checked(cell) and not cell.outputs:
            found.append(
                f"{path}: a {CHECK_MARK} cell has no stored output, so nbval would "
                f"skip it (run: python tools/notebooks.py refresh {path})"
            )
    return found


def refresh(path: Path) -> None:
    """Execute the notebook in its folder, then keep only the checked outputs."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    nbformat.write(cleaned(nb), path)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("check", "strip", "refresh"):
        print(__doc__)
        return 2
    command, paths = argv[0], [Path(p) for p in argv[1:]]
    found = []
    for path in paths:
        if command == "check":
            found += problems(path)
        elif command == "strip":
            nbformat.write(cleaned(nbformat.read(path, as_version=4)), path)
        else:
            print(f"executing {path} ...", flush=True)
            refresh(path)
    print("\n".join(found) or f"{command}: {len(paths)} notebook(s) done")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
