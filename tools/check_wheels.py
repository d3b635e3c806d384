"""Does every pin in pyproject.toml have a wheel for every supported Python on three platforms?

The README promises Python 3.11-3.14 (pyproject.toml's `requires-python`) on Linux x86-64, macOS on
Apple silicon and Windows x86-64. A pin with no wheel for one of them makes `pip install` stop with
"No matching distribution found", or build from source, on that learner's machine. This script asks
the package index (the simple API, no wheel is downloaded: torch's are gigabytes) which files each
pinned release has, and checks, for every Python in the range and every platform, that one of them
is a wheel pip would install there: right Python and ABI tag, right platform tag, and a
`requires-python` that admits that Python.

    .venv/bin/python tools/check_wheels.py                       # the pins of pyproject.toml
    .venv/bin/python tools/check_wheels.py --python 3.10 numpy==2.4.6   # any pins, any Pythons

It prints one row per pin and one column per Python, then the oldest operating systems the wheels
need. Exit status: 0 all fit, 1 some pin lacks a wheel (each gap is named), 2 the index cannot be
reached. It reads the public index (https://pypi.org/simple/, or --index-url), not pip's
configuration: a local mirror or constraint file (as on the development machine) says nothing about
what a learner's `pip install` will find. Only the pins themselves are checked, not what they pull in.
`packaging` (pip's own rules for versions and tags) is pinned in pyproject.toml.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
INDEX_URL = "https://pypi.org/simple/"

# The platforms the README names, with the environment markers pip evaluates there.
PLATFORMS = {
    "linux-x86_64": {"sys_platform": "linux", "platform_system": "Linux",
                     "platform_machine": "x86_64", "os_name": "posix"},
    "macos-arm64": {"sys_platform": "darwin", "platform_system": "Darwin",
                    "platform_machine": "arm64", "os_name": "posix"},
    "windows-x86_64": {"sys_platform": "win32", "platform_system": "Windows",
                       "platform_machine": "AMD64", "os_name": "nt"},
}
# Old manylinux names and the glibc they stand for (PEP 600).
MANYLINUX_ALIASES = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}

IndexFile = dict  # {"filename": str, "requires_python": str | None}


def supported_pythons(requires_python: str) -> list[str]:
    """The minor versions ("3.11", ...) that a requires-python such as ">=3.11,<3.15" admits."""
    spec = SpecifierSet(requires_python)
    pythons = [f"3.{m}" for m in range(40) if spec.contains(f"3.{m}")]
    if not pythons or pythons[-1] == "3.39":
        raise ValueError(f"requires-python {requires_python!r} needs a lower and an upper bound "
                         "(e.g. '>=3.11,<3.15') to say which Pythons to check")
    return pythons


def read_project(path: Path = ROOT / "pyproject.toml") -> tuple[list[str], str]:
    """The dependency strings and requires-python of a pyproject.toml."""
    project = tomllib.loads(path.read_text())["project"]
    return project["dependencies"], project["requires-python"]


def platform_need(platform_tag: str, platform: str) -> tuple[int, int] | None:
    """(0, 0) if a wheel's platform tag installs anywhere on `platform`, the oldest OS version it
    needs there (glibc or macOS), or None if it does not install there at all."""
    if platform_tag == "any":
        return (0, 0)
    if platform == "linux-x86_64":
        if m := re.fullmatch(r"manylinux_(\d+)_(\d+)_x86_64", platform_tag):
            return (int(m[1]), int(m[2]))
        alias = platform_tag.removesuffix("_x86_64")
        return MANYLINUX_ALIASES.get(alias) if platform_tag.endswith("_x86_64") else None
    if platform == "macos-arm64":
        if m := re.fullmatch(r"macosx_(\d+)_(\d+)_(arm64|universal2)", platform_tag):
            return max((int(m[1]), int(m[2])), (11, 0))  # Apple silicon starts at macOS 11
        return None
    if platform == "windows-x86_64":
        return (0, 0) if platform_tag == "win_amd64" else None
    raise ValueError(f"unknown platform {platform!r}; known: {', '.join(PLATFORMS)}")


def python_fits(interpreter: str, abi: str, python: str) -> bool:
    """Does a wheel's interpreter and ABI tag (cp312 + cp312, cp39 + abi3, py3 + none) install on
    CPython `python` ("3.12")? The same rules as pip, for the standard (not free-threaded) build."""
    minor = int(python.split(".")[1])
    tag = re.fullmatch(r"(cp|py)3(\d*)", interpreter)
    if not tag:
        return False
    kind, tag_minor = tag[1], int(tag[2]) if tag[2] else None
    if abi == "none":  # pure Python, or a binary that does not use Python's ABI
        return tag_minor is None or (tag_minor <= minor if kind == "py" else tag_minor == minor)
    if abi == "abi3":  # the stable ABI: built for 3.N, works on every later 3.x
        return kind == "cp" and tag_minor is not None and tag_minor <= minor
    return kind == "cp" and tag_minor == minor and abi == f"cp3{minor}"


def admits(requires_python: str | None, python: str) -> bool:
    """Does a file's requires-python admit `python`? (pip ignores one it cannot parse.)"""
    try:
        return requires_python is None or SpecifierSet(requires_python).contains(python)
    except InvalidSpecifier:
        return True


def best_wheel(files: list[IndexFile], python: str,
               platform: str) -> tuple[str, tuple[int, int]] | None:
    """Among one release's files, the wheel that installs on `python` and `platform` and needs the
    oldest OS, as (filename, OS version it needs); None if there is none."""
    found = []
    for f in files:
        if not f["filename"].endswith(".whl") or not admits(f["requires_python"], python):
            continue
        try:
            tags = parse_wheel_filename(f["filename"])[3]
        except InvalidWheelFilename:
            continue
        needs = [platform_need(t.platform, platform) for t in tags
                 if python_fits(t.interpreter, t.abi, python)]
        needs = [n for n in needs if n is not None]
        if needs:
            found.append((min(needs), f["filename"]))
    return (min(found)[1], min(found)[0]) if found else None


def why_missing(files: list[IndexFile], python: str) -> str:
    """Why a pinned release (its files on the index: `files`) has no wheel for `python`."""
    wheels = [f for f in files if f["filename"].endswith(".whl")]
    if not wheels:
        return "this version has no wheels, only a source archive"
    rejecting = {f["requires_python"] for f in wheels if not admits(f["requires_python"], python)}
    if rejecting:
        return f"its wheels require Python {', '.join(sorted(rejecting))}"
    return f"no wheel is tagged for CPython {python} there"


def _version_of(f: IndexFile) -> Version | None:
    name = f["filename"]
    try:
        if name.endswith(".whl"):
            return parse_wheel_filename(name)[1]
        stem = re.sub(r"\.(tar\.gz|zip|tar\.bz2)$", "", name)
        return Version(stem.rsplit("-", 1)[1])
    except (InvalidWheelFilename, ValueError, IndexError):
        return None


def check(dependencies: list[str], pythons: list[str],
          files_of: Callable[[str], list[IndexFile]]) -> tuple[dict, list[str]]:
    """Check every pin against every Python and platform.

    Returns ({pin: {python: {platform: (filename, needs) | None | "n/a"}}}, problems): "n/a" where
    the pin's environment marker leaves it out, None (and a line in problems) where no wheel fits."""
    table: dict = {}
    problems: list[str] = []
    for dependency in dependencies:
        try:
            req = Requirement(dependency)
        except InvalidRequirement as e:
            problems.append(f"{dependency!r} cannot be read as a requirement: {e}")
            continue
        pins = [s for s in req.specifier if s.operator == "=="]
        if len(pins) != 1 or len(req.specifier) != 1 or "*" in pins[0].version:
            problems.append(f"{dependency!r} is not pinned to one version with ==")
            continue
        version, label = pins[0].version, f"{req.name}=={pins[0].version}"
        files = [f for f in files_of(req.name) if _version_of(f) == Version(version)]
        row = table.setdefault(label, {})
        if not files:
            problems.append(f"{label}: this version is not on the index")
        for python in pythons:
            cells = row.setdefault(python, {})
            for platform, env in PLATFORMS.items():
                marker_env = {**env, "python_version": python, "python_full_version": f"{python}.0"}
                if req.marker is not None and not req.marker.evaluate(marker_env):
                    cells[platform] = "n/a"
                else:
                    cells[platform] = best_wheel(files, python, platform)
            missing = [platform for platform, cell in cells.items() if cell is None]
            if missing and files:
                problems.append(f"{label}: no wheel for Python {python} on {', '.join(missing)} "
                                f"({why_missing(files, python)})")
    return table, problems


class _Links(HTMLParser):
    """The files of a PEP 503 (HTML) simple index page."""

    def __init__(self) -> None:
        super().__init__()
        self.files: list[IndexFile] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            a = dict(attrs)
            href = (a.get("href") or "").split("#")[0]
            self.files.append({"filename": urllib.request.unquote(href.rsplit("/", 1)[-1]),
                               "requires_python": a.get("data-requires-python")})


def index_files(name: str, index_url: str = INDEX_URL, timeout: float = 60) -> list[IndexFile]:
    """Every file the index lists for a project (name and requires-python); [] for a project it
    does not know. Asks for the JSON form of the simple API (PEP 691) and reads the HTML one
    (PEP 503) if that is what comes, as from a mirror or an index on disk (file://)."""
    url = index_url.rstrip("/") + "/" + canonicalize_name(name) + "/"
    if url.startswith("file:"):  # a simple index on disk: a folder per project
        url += "index.html"
    request = urllib.request.Request(url, headers={
        "Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read().decode()
            kind = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        if e.code == 404:  # a project the index does not know
            return []
        raise
    except urllib.error.URLError as e:
        if isinstance(e.reason, FileNotFoundError):
            return []
        raise
    if "json" in kind:
        return [{"filename": f["filename"], "requires_python": f.get("requires-python")}
                for f in json.loads(body)["files"]]
    links = _Links()
    links.feed(body)
    return links.files


def oldest_systems(table: dict) -> dict[str, tuple[tuple[int, int], str]]:
    """Per platform, the oldest OS version every pin installs on (the highest any pin's best wheel
    needs) and the pin that sets it; platforms where nothing needs a version are left out."""
    oldest: dict[str, tuple[tuple[int, int], str]] = {}
    for label, row in table.items():
        for cells in row.values():
            for platform, cell in cells.items():
                if isinstance(cell, tuple) and cell[1] > oldest.get(platform, ((0, 0), ""))[0]:
                    oldest[platform] = (cell[1], label)
    return oldest


def report(table: dict, pythons: list[str], problems: list[str]) -> str:
    """The table (one row per pin, one column per Python) and what is missing or needed."""
    short = {"linux-x86_64": "linux", "macos-arm64": "mac", "windows-x86_64": "win"}
    rows = []
    for label, row in table.items():
        cells = []
        for python in pythons:
            missing = [short[pl] for pl, cell in row.get(python, {}).items() if cell is None]
            skipped = all(cell == "n/a" for cell in row.get(python, {}).values())
            cells.append("n/a" if skipped else "no " + "/".join(missing) if missing else "ok")
        rows.append([label, *cells])
    widths = [max(len(r[i]) for r in [["pin", *pythons], *rows]) + 2 for i in range(len(pythons) + 1)]
    lines = ["".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in [["pin", *pythons], *rows]]
    names = {"linux-x86_64": "Linux x86-64: glibc", "macos-arm64": "macOS arm64:",
             "windows-x86_64": "Windows x86-64:"}
    for platform, (needs, label) in oldest_systems(table).items():
        if needs > (0, 0):
            lines.append(f"{names[platform]} {needs[0]}.{needs[1]} or newer (for {label})")
    lines += problems
    where = ", ".join(PLATFORMS)
    lines.append(f"{len(problems)} gap(s): some pins have no wheel" if problems else
                 f"All {len(table)} pins have a wheel for Python {', '.join(pythons)} on {where}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pins", nargs="*", help="pins to check instead of pyproject.toml's")
    parser.add_argument("--python", action="append", metavar="3.X",
                        help="a Python to check (repeatable); default: pyproject's requires-python")
    parser.add_argument("--index-url", default=INDEX_URL, help=f"simple index (default {INDEX_URL})")
    args = parser.parse_args(argv)
    dependencies, requires_python = read_project()
    try:
        pythons = args.python or supported_pythons(requires_python)
    except ValueError as e:
        parser.error(str(e))
    fetched: dict[str, list[IndexFile]] = {}

    def files_of(name: str) -> list[IndexFile]:
        if name not in fetched:
            fetched[name] = index_files(name, args.index_url)
        return fetched[name]

    try:
        table, problems = check(args.pins or dependencies, pythons, files_of)
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        print(f"cannot reach the package index {args.index_url} ({e}); this check needs it",
              file=sys.stderr)
        return 2
    print(report(table, pythons, problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
