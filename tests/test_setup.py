"""`make setup` picks a supported Python, or stops before creating .venv and says what to do.

The Makefile runs in a scratch folder with made-up interpreters (small shell scripts that report a
version and record what they are asked to do), so no Python is installed and nothing is slow."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="needs GNU make")
HELP = ("this project needs Python 3.11 to 3.14. Install one (python.org; Ubuntu 22.04: "
        "sudo apt install python3.11-venv), then: make setup PYTHON=python3.11")


def fake_python(folder: Path, name: str, version: str | None) -> Path:
    """An interpreter that reports `version` and records any other command (version None: a pyenv
    shim for a Python that is not installed, which is on PATH but fails)."""
    folder.mkdir(exist_ok=True)
    path = folder / name
    if version is None:
        path.write_text(f'#!/bin/sh\necho "pyenv: {name}: command not found" >&2\nexit 127\n')
    else:
        path.write_text(f'#!/bin/sh\nif [ "$1" = -c ]; then [ -n "$2" ] && echo {version}; exit 0; fi\n'
                        f'echo "{name} $*" >> "{folder / "asked"}"\nexit 1\n')
    path.chmod(0o755)
    return path


def make_setup(folder: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess:
    """`make setup ARGS` on a copy of the Makefile and pyproject.toml in `folder`."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, folder / name)
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PYTHON"}}
    if path is not None:
        env["PATH"] = path
    return subprocess.run([MAKE, "setup", *args], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=60)


def test_an_older_python_stops_setup_before_the_venv_with_one_line(tmp_path):
    old = fake_python(tmp_path / "bin", "python3.10", "3.10.12")
    done = make_setup(tmp_path, f"PYTHON={old}")
    assert done.returncode != 0
    assert done.stderr.splitlines()[0] == f"make setup: {old} is Python 3.10.12; {HELP}"
    assert not (tmp_path / ".venv").exists() and not (tmp_path / "bin" / "asked").exists()


def test_a_python_that_does_not_run_stops_setup_too(tmp_path):
    done = make_setup(tmp_path, f"PYTHON={tmp_path / 'no-such-python'}")
    assert done.returncode != 0
    assert done.stderr.splitlines()[0] == (f"make setup: {tmp_path / 'no-such-python'} is missing or "
                                           f"broken; {HELP}")


def test_a_supported_python_given_by_hand_is_used(tmp_path):
    ok = fake_python(tmp_path / "bin", "python3.14", "3.14.0")
    done = make_setup(tmp_path, f"PYTHON={ok}")
    assert "needs Python" not in done.stderr
    assert (tmp_path / "bin" / "asked").read_text() == "python3.14 -m venv .venv\n"


def test_the_newest_supported_python_that_runs_is_found_before_python3(tmp_path):
    bin_ = tmp_path / "bin"
    fake_python(bin_, "python3.13", None)  # a pyenv shim: on PATH, but not installed
    fake_python(bin_, "python3.12", "3.12.4")
    fake_python(bin_, "python3.11", "3.11.9")
    fake_python(bin_, "python3", "3.10.12")
    make_setup(tmp_path, path=str(bin_))
    assert (bin_ / "asked").read_text() == "python3.12 -m venv .venv\n"


def test_with_no_supported_python_setup_names_the_python3_it_found(tmp_path):
    bin_ = tmp_path / "bin"
    fake_python(bin_, "python3.13", None)
    fake_python(bin_, "python3", "3.10.12")
    done = make_setup(tmp_path, path=str(bin_))
    assert done.returncode != 0
    assert done.stderr.splitlines()[0] == f"make setup: python3 is Python 3.10.12; {HELP}"
    assert not (tmp_path / ".venv").exists()


def test_the_makefile_the_readme_and_pyproject_name_one_python_range():
    makefile = (ROOT / "Makefile").read_text()
    versions = re.search(r"^PY_VERSIONS := (.+)$", makefile, re.M)[1].split()
    requires = SpecifierSet(re.search(r'^requires-python = "(.+)"$',
                                      (ROOT / "pyproject.toml").read_text(), re.M)[1])
    in_range = [f"3.{m}" for m in range(40) if requires.contains(f"3.{m}")]
    assert sorted(versions, key=lambda v: int(v.split(".")[1])) == in_range
    assert f"Python {in_range[0]}–{in_range[-1]}" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("flags, expected", [
    ((), []), (("QUICK=0", "HTML=0"), []), (("QUICK=1",), ["--quick"]), (("HTML=yes",), ["--html"]),
])
def test_make_run_passes_quick_and_html_only_when_they_are_on(tmp_path, flags, expected):
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").touch()
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / ".installed-stamp").touch()  # set up already: `make -n` prints only the run
    unset = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "QUICK", "HTML"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    done = subprocess.run([MAKE, "-n", "run", *flags], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    (command,) = [line for line in done.stdout.splitlines() if "lenet5_series run" in line]
    assert command.split()[4:] == expected
