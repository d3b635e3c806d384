"""Every module has its place in the three layers, and imports run one way (shared/DESIGN.md):

    programs        started from a command line: the papermill runner (runner.py, __main__.py), the
                    website and handout builder (publish.py), the graded assignments (grading.py), the
                    torchrun trainer of notebook 05 and its all-reduce demo (ddp.py, allreduce.py),
                    the benchmarks and tools
       |
    lenet5_helpers  what the notebooks teach
       |
    infrastructure  lenet5_series modules no notebook teaches: MNIST files, run folders, parameters,
                    the CPU thread budget, answer checks, the SGD update a CUDA graph can hold

ddp.py and allreduce.py live in lenet5_series but are programs: torchrun starts them, and notebook
05 shows their code and runs them as a learner would from a terminal; ddp.py trains with the
helper's pieces (an arrow down, as every program's). Nothing below imports a program.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INFRASTRUCTURE = {"paths", "params", "mnist", "runs", "threads", "exercises", "graphed"}
PROGRAMS = {"runner", "__main__", "publish", "grading", "ddp", "allreduce"}
PACKAGE = {p.stem for p in (ROOT / "lenet5_series").glob("*.py")} - {"__init__"}
SCRIPTS = {p.stem for folder in ("benchmarks", "tools") for p in (ROOT / folder).glob("*.py")}


def imports_of(path: Path) -> set[str]:
    """The project modules a file imports: "lenet5_helpers", "lenet5_series.<name>", or the name of
    a benchmark or tool script (they import each other by name)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "lenet5_series":
            names = [f"lenet5_series.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        found |= {n for n in names if n == "lenet5_helpers" or n.startswith("lenet5_series.") or n in SCRIPTS}
    return found


def layer(name: str) -> str:
    if name == "lenet5_helpers":
        return "helpers"
    module = name.removeprefix("lenet5_series.")
    return "infrastructure" if module in INFRASTRUCTURE else "programs"


def test_every_module_of_the_package_has_a_layer():
    assert PACKAGE == INFRASTRUCTURE | PROGRAMS, PACKAGE ^ (INFRASTRUCTURE | PROGRAMS)
    assert not INFRASTRUCTURE & PROGRAMS


@pytest.mark.parametrize("name", sorted(INFRASTRUCTURE))
def test_infrastructure_imports_only_infrastructure(name):
    imported = imports_of(ROOT / "lenet5_series" / f"{name}.py")
    assert {layer(i) for i in imported} <= {"infrastructure"}, imported


def test_the_helper_imports_only_infrastructure():
    imported = imports_of(ROOT / "lenet5_helpers.py")
    assert imported and {layer(i) for i in imported} == {"infrastructure"}, imported


@pytest.mark.parametrize("path", sorted(
    [f"lenet5_series/{name}.py" for name in PROGRAMS]
    + [p.relative_to(ROOT).as_posix() for folder in ("benchmarks", "tools")
       for p in (ROOT / folder).glob("*.py")]))
def test_programs_import_the_layers_below_and_the_scripts_beside_them(path):
    """A program may import the helper, infrastructure, and (a benchmark) another benchmark; of the
    package's programs only the entry point imports another (__main__ -> runner)."""
    imported = imports_of(ROOT / path)
    programs = {i for i in imported if i.startswith("lenet5_series.") and layer(i) == "programs"}
    # the entry point starts the runner; the assignments (grading.py) are built from the notebooks'
    # exercises as publish.py reads them, and publish.py's command line can build them
    allowed = {"__main__.py": {"lenet5_series.runner"}, "publish.py": {"lenet5_series.grading"},
               "grading.py": {"lenet5_series.publish"}}
    assert programs <= allowed.get(Path(path).name, set()), programs
    if path.startswith("lenet5_series/"):
        assert not imported & SCRIPTS, imported  # the package never imports a benchmark
