"""Make the learner notebooks (notebooks/) from the solution notebooks (solutions/), the source of truth.

    python tools/make_learner_notebooks.py                 # regenerate every notebooks/NN_*.ipynb
    python tools/make_learner_notebooks.py --check         # exit 1 if a learner copy is out of date
    python tools/make_learner_notebooks.py --refresh-outputs solutions/04_*.ipynb
                                                           # re-run solutions, store their outputs, regenerate

In a learner copy every `# BEGIN SOLUTION [id]` ... `# END SOLUTION` region becomes its `# STUB: ...`
lines (or `...  # your code here`), `# NBVAL_*` markers go, and all outputs are cleared. The course
diagrams are drawn again into solutions/images/ and notebooks/images/ (labapp/course/diagrams).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
NOTEBOOKS = ROOT / "notebooks"
sys.path.insert(0, str(ROOT))

from labapp.course import diagrams  # noqa: E402
from labapp.course.checks.core import split_solution  # noqa: E402
from labapp.runtime.ports import free_port  # noqa: E402

IMAGE_FOLDERS = (SOLUTIONS / "images", NOTEBOOKS / "images")
NBVAL_MARKER = "# NBVAL_"
KEEP_CELL_METADATA = ("tags", "editable", "deletable")


def learner_source(source: str) -> str:
    """Return a code cell's source for the learner: stubs instead of solutions, no nbval markers."""
    text, _ = split_solution(source)
    lines = [line for line in text.split("\n") if not line.strip().startswith(NBVAL_MARKER)]
    return "\n".join(lines).strip("\n")


def learner_notebook(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return the learner's copy of a solution notebook (the input is not changed)."""
    nb = copy.deepcopy(solution)
    for cell in nb.cells:
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in KEEP_CELL_METADATA}
        if cell.cell_type == "code":
            cell.source = learner_source(cell.source)
            cell.outputs = []
            cell.execution_count = None
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in ("kernelspec", "language_info")}
    nb.metadata.get("language_info", {}).pop("version", None)
    return nb


def learner_path(solution_path: Path) -> Path:
    """Return where the learner copy of a solution notebook lives."""
    return NOTEBOOKS / solution_path.name


def render(nb: nbformat.NotebookNode) -> str:
    """Serialise a notebook the one way both this tool and the tests use."""
    return nbformat.writes(nb) + "\n"


def expected_learner_text(solution_path: Path) -> str:
    """Return what notebooks/<name> must contain for this solution notebook."""
    return render(learner_notebook(nbformat.read(solution_path, as_version=4)))


def solution_paths() -> list[Path]:
    """Return every solution notebook, in course order."""
    return sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb"))


def regenerate(paths: list[Path]) -> list[Path]:
    """Write the learner copies of these solution notebooks; return the ones that changed."""
    NOTEBOOKS.mkdir(exist_ok=True)
    changed = []
    for path in paths:
        target = learner_path(path)
        text = expected_learner_text(path)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
            changed.append(target)
    return changed


def stale_images() -> list[Path]:
    """Return every diagram file in the image folders that is missing or differs from what the code draws."""
    return [
        folder / name
        for folder in IMAGE_FOLDERS
        for name, drawing in diagrams.DIAGRAMS.items()
        if not (folder / name).exists() or (folder / name).read_text(encoding="utf-8") != drawing()
    ]


def regenerate_images() -> list[Path]:
    """Draw the diagrams into both image folders; return the files that changed."""
    return [path for folder in IMAGE_FOLDERS for path in diagrams.write_all(folder)]


def refresh_outputs(path: Path, timeout: int = 120) -> float:
    """Run a solution notebook in a fresh kernel on a private lab and store its outputs; return seconds."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)
    os.environ["LAB_HOME"] = tempfile.mkdtemp(prefix="labapp-nb-home-")
    os.environ["LAB_ENDPOINT_URL"] = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,
        store_widget_state=False,  # live widget state is noise in a stored notebook
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    took = time.monotonic() - started
    nbformat.write(nb, path)
    return took


def main(argv: list[str] | None = None) -> int:
    """Regenerate, check or refresh, as the command line asks."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--check", action="store_true", help="only report learner copies that are out of date"
    )
    parser.add_argument(
        "--refresh-outputs", nargs="*", metavar="SOLUTION", help="re-run these solution notebooks first"
    )
    args = parser.parse_args(argv)
    paths = solution_paths()
    if args.refresh_outputs is not None:
        chosen = [Path(p).resolve() for p in args.refresh_outputs] or paths
        for path in chosen:
            print(f"running {path.name} ...", flush=True)
            print(f"  {refresh_outputs(path):.1f}s", flush=True)
    if args.check:
        stale = [
            learner_path(p)
            for p in paths
            if not learner_path(p).exists()
            or learner_path(p).read_text(encoding="utf-8") != expected_learner_text(p)
        ]
        stale += stale_images()
        for target in stale:
            print(f"out of date: {target.relative_to(ROOT)}")
        if stale:
            print("Run `python tools/make_learner_notebooks.py` to regenerate them.")
        return 1 if stale else 0
    for target in [*regenerate(paths), *regenerate_images()]:
        print(f"wrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
