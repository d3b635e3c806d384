"""tools/check_wheels.py: every pin has a wheel for every supported Python on Linux, macOS, Windows.

The rules are tested offline on a made-up index; the real pins against the real index (slow: it
asks pypi.org, and is skipped, saying so, where the index cannot be reached)."""

from __future__ import annotations

import importlib.util
import urllib.error
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_wheels", ROOT / "tools" / "check_wheels.py")
cw = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cw)

PYTHONS = ["3.11", "3.12", "3.13", "3.14"]
EVERYWHERE = ["manylinux_2_28_x86_64", "macosx_14_0_arm64", "win_amd64"]


def wheels(name: str, version: str, pythons: list[str], platforms: list[str],
           requires: str | None = None) -> list[dict]:
    return [{"filename": f"{name}-{version}-cp3{p[2:]}-cp3{p[2:]}-{plat}.whl", "requires_python": requires}
            for p in pythons for plat in platforms]


INDEX = {
    "binary": wheels("binary", "1.0", PYTHONS, EVERYWHERE)  # no 3.10 wheels, like numpy 2.4.6
    + wheels("binary", "0.9", ["3.10"], EVERYWHERE),
    "pure": [{"filename": "pure-2.0-py3-none-any.whl", "requires_python": ">=3.8"},
             {"filename": "pure-2.0.tar.gz", "requires_python": ">=3.8"}],
    "newer": [{"filename": "newer-1.0-py3-none-any.whl", "requires_python": ">=3.12"}],
    "nowindows": wheels("nowindows", "1.0", PYTHONS, EVERYWHERE[:2]),
    "stable": [{"filename": f"stable-3.0-cp39-abi3-{p}.whl", "requires_python": None}
               for p in ("manylinux2014_x86_64", "macosx_10_12_universal2", "win_amd64")],
    "sourceonly": [{"filename": "sourceonly-1.0.tar.gz", "requires_python": None}],
}


def run(pins: list[str], pythons: list[str] = PYTHONS) -> tuple[dict, list[str]]:
    return cw.check(pins, pythons, lambda name: INDEX.get(name, []))


def test_pins_with_wheels_everywhere_pass_and_name_the_oldest_systems_they_need():
    table, problems = run(["binary==1.0", "pure==2.0", "stable==3.0"])
    assert problems == []
    assert table["binary==1.0"]["3.14"]["windows-x86_64"][0] == "binary-1.0-cp314-cp314-win_amd64.whl"
    assert table["stable==3.0"]["3.13"]["macos-arm64"] == (
        "stable-3.0-cp39-abi3-macosx_10_12_universal2.whl", (11, 0))
    assert cw.oldest_systems(table) == {"linux-x86_64": ((2, 28), "binary==1.0"),
                                        "macos-arm64": ((14, 0), "binary==1.0")}
    assert "All 3 pins have a wheel for Python 3.11, 3.12, 3.13, 3.14" in cw.report(table, PYTHONS,
                                                                                    problems)


def test_a_pin_without_a_wheel_for_one_python_fails_and_names_it():
    table, problems = run(["binary==1.0", "pure==2.0"], ["3.10", "3.11"])
    assert problems == ["binary==1.0: no wheel for Python 3.10 on linux-x86_64, macos-arm64, "
                        "windows-x86_64 (no wheel is tagged for CPython 3.10 there)"]
    assert set(table["binary==1.0"]["3.10"].values()) == {None}
    assert None not in table["binary==1.0"]["3.11"].values()
    text = cw.report(table, ["3.10", "3.11"], problems)
    assert "binary==1.0  no linux/mac/win  ok" in text and text.endswith("some pins have no wheel")


def test_requires_python_counts_even_for_a_pure_python_wheel():
    _, problems = run(["newer==1.0"])
    assert problems == ["newer==1.0: no wheel for Python 3.11 on linux-x86_64, macos-arm64, "
                        "windows-x86_64 (its wheels require Python >=3.12)"]


def test_a_platform_without_a_wheel_fails_alone():
    _, problems = run(["nowindows==1.0"], ["3.12"])
    assert problems == ["nowindows==1.0: no wheel for Python 3.12 on windows-x86_64 "
                        "(no wheel is tagged for CPython 3.12 there)"]


@pytest.mark.parametrize("pin, message", [
    ("binary==2.0", "binary==2.0: this version is not on the index"),
    ("unknown==1.0", "unknown==1.0: this version is not on the index"),
    ("sourceonly==1.0", "sourceonly==1.0: no wheel for Python 3.12 on linux-x86_64, macos-arm64, "
                        "windows-x86_64 (this version has no wheels, only a source archive)"),
    ("pure>=2.0", "'pure>=2.0' is not pinned to one version with =="),
])
def test_what_cannot_be_installed_from_a_wheel_is_named(pin, message):
    assert run([pin], ["3.12"])[1] == [message]


def test_a_pin_whose_marker_leaves_out_a_python_or_platform_is_not_needed_there():
    table, problems = run(["binary==0.9; python_version < '3.11'", "binary==1.0; python_version >= '3.11'",
                           "nowindows==1.0; os_name != 'nt' and python_version >= '3.11'"],
                          ["3.10", "3.11"])
    assert problems == []
    assert table["binary==1.0"]["3.10"] == dict.fromkeys(cw.PLATFORMS, "n/a")
    assert table["nowindows==1.0"]["3.11"]["windows-x86_64"] == "n/a"


@pytest.mark.parametrize("interpreter, abi, python, fits", [
    ("cp311", "cp311", "3.11", True), ("cp311", "cp311", "3.12", False),
    ("cp39", "abi3", "3.14", True), ("cp312", "abi3", "3.11", False),
    ("py3", "none", "3.11", True), ("py312", "none", "3.11", False), ("py310", "none", "3.11", True),
    ("cp313", "cp313t", "3.13", False), ("pp310", "pypy310_pp73", "3.10", False),
])
def test_python_and_abi_tags_follow_pip(interpreter, abi, python, fits):
    assert cw.python_fits(interpreter, abi, python) is fits


@pytest.mark.parametrize("tag, platform, needs", [
    ("any", "windows-x86_64", (0, 0)), ("manylinux2014_x86_64", "linux-x86_64", (2, 17)),
    ("manylinux_2_28_x86_64", "linux-x86_64", (2, 28)), ("manylinux_2_28_aarch64", "linux-x86_64", None),
    ("musllinux_1_2_x86_64", "linux-x86_64", None), ("macosx_14_0_arm64", "macos-arm64", (14, 0)),
    ("macosx_10_9_universal2", "macos-arm64", (11, 0)), ("macosx_11_0_x86_64", "macos-arm64", None),
    ("win_amd64", "windows-x86_64", (0, 0)), ("win32", "windows-x86_64", None),
])
def test_platform_tags_and_the_system_they_need(tag, platform, needs):
    assert cw.platform_need(tag, platform) == needs


def test_the_python_range_comes_from_requires_python_and_must_be_bounded():
    assert cw.supported_pythons(">=3.11,<3.15") == PYTHONS
    with pytest.raises(ValueError, match="upper bound"):
        cw.supported_pythons(">=3.11")


def test_an_html_index_on_disk_is_read_too(tmp_path):
    (tmp_path / "pure").mkdir()
    (tmp_path / "pure" / "index.html").write_text(
        '<a href="../../f/pure-2.0-py3-none-any.whl#sha256=00" data-requires-python="&gt;=3.12">x</a>'
        '<a href="../../f/pure-2.0.tar.gz#sha256=00">pure-2.0.tar.gz</a>')
    files = cw.index_files("Pure", tmp_path.as_uri())
    assert files == [{"filename": "pure-2.0-py3-none-any.whl", "requires_python": ">=3.12"},
                     {"filename": "pure-2.0.tar.gz", "requires_python": None}]
    assert cw.index_files("unknown", tmp_path.as_uri()) == []
    _, problems = cw.check(["pure==2.0"], ["3.11"], lambda n: cw.index_files(n, tmp_path.as_uri()))
    assert problems and "require Python >=3.12" in problems[0]


# --- the real pins, the real index -----------------------------------------------------------------

_fetched: dict[str, list[dict]] = {}


def real_index(name: str) -> list[dict]:
    if name not in _fetched:
        try:
            _fetched[name] = cw.index_files(name, timeout=30)
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            pytest.skip(f"the package index {cw.INDEX_URL} cannot be reached ({e}); "
                        "run tools/check_wheels.py where it can")
    return _fetched[name]


@pytest.mark.slow
def test_every_pin_has_a_wheel_for_every_supported_python_and_platform():
    dependencies, requires_python = cw.read_project()
    pythons = cw.supported_pythons(requires_python)
    table, problems = cw.check(dependencies, pythons, real_index)
    assert problems == [], "\n".join(problems)
    assert len(table) == len(dependencies) and "torch==2.14.1" in table


@pytest.mark.slow
def test_the_check_fails_on_a_real_pin_without_a_wheel_for_a_python(capsys):
    real_index("numpy")  # skips here if the index cannot be reached
    assert cw.main(["--python", "3.10", "--python", "3.11", "numpy==2.4.6"]) == 1
    out = capsys.readouterr().out
    assert ("numpy==2.4.6: no wheel for Python 3.10 on linux-x86_64, macos-arm64, windows-x86_64 "
            "(its wheels require Python >=3.11)") in out
    assert "numpy==2.4.6  no linux/mac/win  ok" in out
