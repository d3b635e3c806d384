"""Graded assignments (`make assignments`): one nbgrader assignment per notebook of the series.

A program, not part of the lessons. nbgrader (the optional extra `grading`) is the grading
tool: it takes the course folder this module writes as it is, and a teacher runs its commands on it
(see website/teachers.md).

Each assignment is the *exercises* of one notebook, built from the same exercise and solution text
as the handouts (`publish.exercises_and_solutions`): a set-up cell that makes what the numbered
answers need (the helper; for 01, the data), then each exercise with a written answer the
teacher grades by hand, and, for an exercise with a number to find (those `check_answer`
knows), a cell for that number and a hidden test that checks it with `check_answer`'s
fingerprint. The lesson itself is not part of the assignment: learners work through it in
their copy of the series, so grading runs only the short exercises notebook and never a training
run.

Course folder (nbgrader's layout): source/<assignment>/ the teacher's version, with the solutions
and the hidden tests; release/<assignment>/ the learners' version, made by nbgrader from it;
nbgrader_config.py (written once, then the teacher's). Rebuilding rewrites the notebooks of these two
folders only, never submissions or grades.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat

from lenet5_series.exercises import ANSWERS
from lenet5_series.publish import BUILD_DIR, exercises_and_solutions, notebooks

if TYPE_CHECKING:
    from nbgrader.apps import NbGraderAPI

COURSE_DIR = BUILD_DIR / "assignments"
EXECUTE_TIMEOUT = 300  # seconds a cell may run when grading (notebook 01's set-up reads MNIST)
NBGRADER_HINT = "install it with `make grading` (the optional extra: pip install -e '.[grading]')"

# What each notebook's exercises use, made as the notebook makes it (run before the exercises).
SETUP = {
    "01": """import matplotlib.pyplot as plt
import torch
import torchvision
from torchvision import transforms

import lenet5_helpers as lh

data_root = lh.prepare_mnist(None, verbose=False)
train_raw = torchvision.datasets.MNIST(data_root, train=True, download=False)
test_raw = torchvision.datasets.MNIST(data_root, train=False, download=False)
x_train, y_train = lh.to_tensors(train_raw)""",
    "02": "import torch\nfrom torch import nn\n\nimport lenet5_helpers as lh",
    "03": "import math\n\nimport torch\nimport torch.nn.functional as F\n\nimport lenet5_helpers as lh",
    "04": "import lenet5_helpers as lh",
    "05": "import lenet5_helpers as lh",
    "06": """import lenet5_helpers as lh

examples = {1: [[(150, 40), (135, 240)]]}  # the drawn 1 of section 1
images = {digit: lh.strokes_to_image(strokes) for digit, strokes in examples.items()}""",
    "07": "import lenet5_helpers as lh",
    "08": "import lenet5_helpers as lh",
}

# The teacher's answer to each exercise with a number, as the folded solution computes it, from
# what SETUP made. Only the source version holds it; nbgrader replaces it in the learners' copy.
SOLUTIONS = {
    "01-2": "train_counts = torch.bincount(train_raw.targets, minlength=10)\n"
            "answer_01_2 = train_counts.argmin().item()",
    "01-3": "ours = x_train * 0.5 + 0.5  # undo Normalize(0.5, 0.5): back to [0, 1]\n"
            "answer_01_3 = ours.std().item()",
    "02-1": "answer_02_1 = (28 - 5 + 2 * 2) // 1 + 1  # conv1's side with padding 2: (W - K + 2P)/S + 1",
    "02-2": "partial = nn.Conv2d(6, 16, kernel_size=5, groups=2)  # each filter sees 3 of the 6 channels\n"
            "answer_02_2 = sum(w.numel() for w in partial.parameters())",
    "03-1": "answer_03_1 = math.log(10)  # -ln(1/10): a uniform guess gives each digit 1/10",
    "03-5": "answer_03_5 = lh.steps_per_epoch(55_000, 512)",
    "04-2": "answer_04_2 = round((1 - lh.LECUN_1998_TEST) * 10_000)",
    "05-1": "answer_05_1 = 128 // 4  # the global batch stays 128, cut into four shares",
    "05-4": "answer_05_4 = (100 * 0.2 + 28 * 0.9) / 128",
    "06-1": """one = images[1]
one_rows = one.any(dim=1).nonzero().flatten()
one_cols = one.any(dim=0).nonzero().flatten()
one_box = (one_rows[-1] - one_rows[0] + 1).item(), (one_cols[-1] - one_cols[0] + 1).item()
answer_06_1 = [-(-side * 20 // max(one_box)) for side in one_box][1]  # rounded up, as in section 2""",
}

ITEM = re.compile(r"^(\d+)\. ", re.M)
SOLUTION_ITEM = re.compile(r"\*\*(\d+)\.\*\*(.*?)(?=\*\*\d+\.\*\*|\Z)", re.S)


def assignment_id(lesson: Path) -> str:
    """The assignment's name: the notebook's, "03-training"."""
    return lesson.stem


def answer_name(exercise: str) -> str:
    """The variable a learner puts a number in: "03-1" -> "answer_03_1"."""
    return "answer_" + exercise.replace("-", "_")


def exercise_items(text: str) -> dict[int, str]:
    """{number: text} for each numbered exercise ("1. ★ ...") of an exercises list, without its number."""
    starts = list(ITEM.finditer(text))
    ends = [m.start() for m in starts[1:]] + [len(text)]
    return {int(m.group(1)): re.sub(r"\n {3}", "\n", text[m.end():end].strip())
            for m, end in zip(starts, ends, strict=True)}


def solution_items(text: str) -> dict[int, str]:
    """{number: text} for each "**1.** ..." solution of a folded solutions block."""
    return {int(number): body.strip() for number, body in SOLUTION_ITEM.findall(text)}


def nbgrader_cell(cell: nbformat.NotebookNode, grade_id: str, *, solution: bool = False,
                  grade: bool = False, points: int = 0) -> nbformat.NotebookNode:
    """Mark a cell for nbgrader: a solution to clear, a graded cell (with points), or read-only.
    Its cell id follows its grade_id, so a rebuild writes the same notebook."""
    meta = {"grade": grade, "grade_id": grade_id, "locked": not solution, "schema_version": 3,
            "solution": solution, "task": False}
    if grade:
        meta["points"] = points
    cell.metadata["nbgrader"] = meta
    cell.id = grade_id.replace("_", "-")
    return cell


def number_cells(exercise: str, number: int) -> list[nbformat.NotebookNode]:
    """For an exercise `check_answer` knows: what to do, the cell for the number (the teacher's
    answer in the source version), and the hidden test that checks it with the same fingerprint."""
    name, ids = answer_name(exercise), exercise.replace("-", "_")
    ask = (f"Your number for exercise {number}, as `{name} = ...` in the cell below; it is checked when "
           f"your work is graded (`lh.check_answer(\"{exercise}\", {name})` tells you now).")
    answer = (f"# exercise {exercise}: {name} = your number\n"
              f"### BEGIN SOLUTION\n{SOLUTIONS[exercise]}\n### END SOLUTION")
    check = (f"# checks {name} as lh.check_answer(\"{exercise}\", {name}) does\n"
             "### BEGIN HIDDEN TESTS\nfrom lenet5_series.exercises import check_answer\n\n"
             f"assert check_answer(\"{exercise}\", {name}), \"{exercise}: not the expected number\"\n"
             "### END HIDDEN TESTS")
    return [nbgrader_cell(nbformat.v4.new_markdown_cell(ask), f"ask_{ids}"),
            nbgrader_cell(nbformat.v4.new_code_cell(answer), name, solution=True),
            nbgrader_cell(nbformat.v4.new_code_cell(check), f"check_{ids}", grade=True, points=1)]


def exercise_cells(lesson: str, number: int, item: str, solution: str) -> list[nbformat.NotebookNode]:
    """One exercise: its text, a written answer the teacher grades by hand (the series' solution in
    the source version) and, if `check_answer` knows it, the number_cells."""
    exercise = f"{lesson}-{number}"
    ids = exercise.replace("-", "_")
    text = f"### Exercise {number}\n\n{item}"
    written = f"**The series' solution** (the learners' copy has an empty answer here):\n\n{solution}"
    cells = [nbgrader_cell(nbformat.v4.new_markdown_cell(text), f"exercise_{ids}"),
             nbgrader_cell(nbformat.v4.new_markdown_cell(written), f"written_{ids}",
                           solution=True, grade=True, points=1)]
    return cells + (number_cells(exercise, number) if exercise in ANSWERS else [])


def assignment_notebook(path: Path) -> nbformat.NotebookNode:
    """The teacher's version of one notebook's assignment: set-up, then every exercise."""
    lesson = path.name[:2]
    nb = nbformat.read(str(path), as_version=4)
    title = nb.cells[0].source.splitlines()[0].lstrip("# ")
    ((exercises, solutions),) = exercises_and_solutions(nb)
    items, answers = exercise_items(exercises), solution_items(solutions)
    head = (f"# {title}: exercises\n\nThe exercises of the notebook `{path.name}`, to hand in. Work "
            "through that notebook first, in your copy of the series; then answer here. Each exercise "
            "has an answer cell your teacher reads (add code cells below it as you need; the code cell "
            "first here imports the helper and makes what the numbered answers need; for the rest, work "
            "in your copy of the notebook). An exercise with a number "
            "to find also has a cell for that number, checked automatically when your work is graded. "
            "Before you hand it in: **Kernel ▸ Restart Kernel and Run All Cells**.")
    cells = [nbgrader_cell(nbformat.v4.new_markdown_cell(head), f"head_{lesson}"),
             nbgrader_cell(nbformat.v4.new_code_cell(SETUP[lesson]), f"setup_{lesson}")]
    for number, item in items.items():
        cells += exercise_cells(lesson, number, item, answers.get(number, "(no written solution)"))
    out = nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"}})
    nbformat.validate(out)
    return out


def config_text() -> str:
    """nbgrader_config.py for the course folder: what `nbgrader ...` run in that folder reads."""
    return ("# nbgrader's settings for this course folder (written by make assignments)\n"
            "c = get_config()  # noqa: F821\n"
            f"c.Execute.timeout = {EXECUTE_TIMEOUT}\n")


def nbgrader_api(course: Path) -> NbGraderAPI:
    """nbgrader's Python interface on the course folder, with the settings of config_text()."""
    try:
        from nbgrader.apps import NbGraderAPI
        from nbgrader.coursedir import CourseDirectory
        from traitlets.config import Config
    except ImportError as error:
        raise RuntimeError(f"nbgrader is not installed: {NBGRADER_HINT}.") from error
    # nbgrader runs the command `alembic` (its gradebook's migrations): the one beside this Python
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    config = Config()
    config.CourseDirectory.root = str(course)
    config.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"
    config.Execute.timeout = EXECUTE_TIMEOUT
    return NbGraderAPI(CourseDirectory(config=config), config=config)


def write_sources(course: Path) -> list[str]:
    """Write the teacher's version of every assignment into course/source/; return their names."""
    names = []
    for path in notebooks():
        folder = course / "source" / assignment_id(path)
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(assignment_notebook(path), str(folder / f"{path.stem}-exercises.ipynb"))
        names.append(assignment_id(path))
    config = course / "nbgrader_config.py"
    if not config.exists():  # written once: a teacher's own settings there stay
        config.write_text(config_text(), encoding="utf-8")
    return names


def build_assignments(course: Path | None = None) -> Path:
    """Write the source versions and let nbgrader make the learners' versions (release/)."""
    course = Path(course or COURSE_DIR).resolve()
    api = nbgrader_api(course)
    for name in write_sources(course):
        result = api.generate_assignment(name, force=True, create=True)
        if not result["success"]:
            raise RuntimeError(f"nbgrader could not generate the assignment {name!r}:\n"
                               f"{result.get('error') or result.get('log')}")
    print(f"assignments: {course / 'source'} (yours, with the solutions) and {course / 'release'} "
          f"(the learners'); see the teachers' page for the round")
    return course


def main(argv: list[str] | None = None) -> int:
    """`python -m lenet5_series.grading [--out FOLDER]` (make assignments)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m lenet5_series.grading", description=main.__doc__)
    parser.add_argument("--out", type=Path, default=None,
                        help="the course folder (default: build/assignments)")
    build_assignments(parser.parse_args(argv).out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
