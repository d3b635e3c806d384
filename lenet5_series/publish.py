"""Publishing the stored notebooks: the website (`make site`) and the handouts (`make handout`).

Infrastructure, not part of the lessons. Both read the notebooks as stored in notebooks/, with
their outputs, and execute nothing.

- site: Sphinx + MyST-NB (settings in website/conf.py) build a static website into build/site/.
  Its start page offers the whole series as one download (ARCHIVE): a notebook alone cannot run
  without the helper module and the package beside it.
- handout: the notebooks without outputs and without the folded solutions into build/handout/,
  and the exercises with their solutions into build/handout/solutions.md, for the teacher.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat

from lenet5_series.paths import NOTEBOOKS_DIR, PROJECT

ROOT = PROJECT
WEBSITE_DIR = ROOT / "website"
BUILD_DIR = ROOT / "build"

# nbval's marker as a comment, with the "# (why)" line that may follow it
NBVAL_COMMENT = re.compile(r"^# NBVAL_\w+[^\n]*\n(# \(.*\)\n)?", re.M)
DETAILS = re.compile(r"\n*<details>.*?</details>[ \t]*", re.S)
SUMMARY = re.compile(r"<summary>.*?</summary>", re.S)
IN_PAGE_LINK = re.compile(r"\[([^\]]+)\]\(#[^)]+\)")
# The whole series as one download: what a clone holds, without what set-up and runs make
ARCHIVE = "lenet5-series.zip"
LEFT_OUT = {".git", ".venv", "data", "runs", "build", "__pycache__", ".pytest_cache", ".ruff_cache",
            ".ipynb_checkpoints"}


def notebooks(folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The numbered notebooks of the series, in order."""
    return sorted(folder.glob("[0-9][0-9]-*.ipynb"))


def without_test_machinery(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook (changed in place) as a learner reads it: no nbval markers (comments or tags),
    no run records.

    Works on both forms of nbval's marker: a `# NBVAL_IGNORE_OUTPUT` comment line or a cell tag.
    """
    for key in ("papermill", "widgets"):
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        tags = [t for t in cell.metadata.get("tags", []) if not t.startswith("nbval")]
        cell.metadata = {"tags": tags} if tags else {}
        if cell.cell_type == "code":
            cell.source = NBVAL_COMMENT.sub("", cell.source)
    return nb


# --------------------------------------------------------------------------------------------
# The whole series as one download
# --------------------------------------------------------------------------------------------

def tracked_files(root: Path) -> list[Path] | None:
    """git's tracked files under `root` (what a clone holds), or None where `root` is not a git
    checkout (an unzipped copy) or git is missing."""
    if not (root / ".git").exists():
        return None
    try:
        listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True,
                                text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return [Path(name) for name in listed.split("\0") if name]


def series_files(root: Path = ROOT) -> list[Path]:
    """The files of the series, relative to `root`: git's tracked files, or, outside a git
    checkout, every file; never those under LEFT_OUT (data, runs, .venv, build, caches)."""
    files = tracked_files(root)
    if files is None:
        files = [path.relative_to(root) for path in root.rglob("*")]
    return sorted(f for f in files if (root / f).is_file() and not LEFT_OUT & set(f.parts)
                  and not any(part.endswith(".egg-info") for part in f.parts))


def write_series_archive(path: Path, root: Path = ROOT) -> Path:
    """Zip the series into `path`, in a folder lenet5-series/: unzip it, then the README's commands
    (make run, make setup) work in that folder as in a clone."""
    top = Path(ARCHIVE).stem
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in series_files(root):
            archive.write(root / name, f"{top}/{name.as_posix()}")
    return path


# --------------------------------------------------------------------------------------------
# The website
# --------------------------------------------------------------------------------------------

def stage_site(staging: Path) -> Path:
    """Lay out the website's sources: index.md, README.md (included by it), notebooks/*.ipynb, the
    other pages of website/ (*.md) and their figures, and the whole series (ARCHIVE), which the
    start page offers as a download."""
    if staging.exists():
        shutil.rmtree(staging)
    (staging / "notebooks").mkdir(parents=True)
    shutil.copy(WEBSITE_DIR / "index.md", staging / "index.md")
    write_series_archive(staging / ARCHIVE)
    # the pages are written to be read on GitHub too, where notebooks are at ../notebooks/
    for page in sorted(WEBSITE_DIR.glob("*.md")):
        if page.name != "index.md":
            text = page.read_text(encoding="utf-8").replace("](../notebooks/", "](notebooks/")
            (staging / page.name).write_text(text, encoding="utf-8")
    if (WEBSITE_DIR / "figures").is_dir():
        shutil.copytree(WEBSITE_DIR / "figures", staging / "figures")
    # the start page includes parts of the README; its links to its own sections become plain text
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    readme = readme.replace("](website/", "](")  # the pages of website/ are at the site's top
    (staging / "README.md").write_text(IN_PAGE_LINK.sub(r"\1 (in the README)", readme), encoding="utf-8")
    for path in notebooks():
        nb = without_test_machinery(nbformat.read(str(path), as_version=4))
        for cell in nb.cells:  # a notebook's link to a page: ../website/x.md on GitHub, ../x.md here
            if cell.cell_type == "markdown":
                cell.source = cell.source.replace("](../website/", "](../")
        nbformat.write(nb, str(staging / "notebooks" / path.name))
    return staging


def build_site(out: Path | None = None) -> Path:
    """Build the static website from the stored notebooks into `out` (default build/site/)."""
    from sphinx.cmd.build import build_main

    out = Path(out or BUILD_DIR / "site")
    staging = stage_site(out.parent / (out.name + "-sources"))
    if out.exists():
        shutil.rmtree(out)
    # -W: a warning (a broken link, an unreadable notebook) fails the build
    status = build_main(["-b", "html", "-q", "-W", "--keep-going", "-c", str(WEBSITE_DIR),
                         "-d", str(staging / ".doctrees"), str(staging), str(out)])
    if status:
        raise RuntimeError(f"Sphinx could not build the website (exit {status}); see above.")
    print(f"website: {out / 'index.html'}  (serve it with: python -m http.server -d {out})")
    return out


# --------------------------------------------------------------------------------------------
# Handouts
# --------------------------------------------------------------------------------------------

def exercises_and_solutions(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """(exercises, solutions) markdown for each folded `<details>` block of the notebook."""
    found = []
    for cell in nb.cells:
        if cell.cell_type != "markdown" or "<details>" not in cell.source:
            continue
        before = DETAILS.split(cell.source)[0]
        heading = before.rfind("## Exercises")
        exercises = before[heading:] if heading >= 0 else before
        for block in DETAILS.findall(cell.source):
            body = SUMMARY.sub("", block).replace("<details>", "").replace("</details>", "")
            found.append((exercises.strip(), body.strip()))
    return found


def handout_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A learner's copy: no outputs, no execution counts, no folded solutions, no test markers."""
    nb = without_test_machinery(copy.deepcopy(nb))
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        elif cell.cell_type == "markdown" and "<details>" in cell.source:
            cell.source = DETAILS.sub("", cell.source).rstrip() + "\n"
    return nb


def write_handout(out: Path | None = None) -> Path:
    """Write the handout notebooks and the teachers' solutions.md into `out` (default build/handout/)."""
    out = Path(out or BUILD_DIR / "handout")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    lines = ["# Solutions to the exercises (for the teacher)", "",
             "The handout notebooks beside this file keep the exercises and leave these out.", ""]
    for path in notebooks():
        nb = nbformat.read(str(path), as_version=4)
        title = next((c.source.splitlines()[0].lstrip("# ") for c in nb.cells
                      if c.cell_type == "markdown" and c.source.startswith("# ")), path.stem)
        lines += [f"## {title}", "", f"Notebook `{path.name}`.", ""]
        for exercises, solutions in exercises_and_solutions(nb):
            lines += [exercises.replace("## Exercises", "### Exercises"), "", "### Solutions", "",
                      solutions, ""]
        handout = handout_notebook(nb)
        nbformat.validate(handout)
        nbformat.write(handout, str(out / path.name))
    (out / "solutions.md").write_text("\n".join(lines), encoding="utf-8")
    print(f"handout: {len(notebooks())} notebooks and solutions.md in {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m lenet5_series.publish site | handout | assignments [--out FOLDER]` (make site,
    make handout, make assignments)."""
    import argparse

    from lenet5_series.grading import build_assignments  # needs nbgrader only when it runs

    parser = argparse.ArgumentParser(prog="python -m lenet5_series.publish", description=main.__doc__)
    parser.add_argument("what", choices=["site", "handout", "assignments"])
    parser.add_argument("--out", type=Path, default=None, help="the folder (default: build/...)")
    args = parser.parse_args(argv)
    build = {"site": build_site, "handout": write_handout, "assignments": build_assignments}
    build[args.what](args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
