"""Where the series keeps things (the project folder, data/, runs/) and how it writes files safely."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
# the folder data/ and runs/ go in: the checkout, or the current folder for an installed package
BASE_DIR = PROJECT if (PROJECT / "pyproject.toml").exists() else Path.cwd()
DEFAULT_DATA_DIR = BASE_DIR / "data"   # $LENET5_DATA_DIR or the data_dir parameter override it
DEFAULT_RUNS_DIR = BASE_DIR / "runs"   # $LENET5_RUNS_DIR overrides it
NOTEBOOKS_DIR = PROJECT / "notebooks"


def runs_dir() -> Path:
    """Where new run folders go: $LENET5_RUNS_DIR, else runs/ in the project."""
    return Path(os.environ.get("LENET5_RUNS_DIR") or DEFAULT_RUNS_DIR)


def show_path(path: str | Path) -> str:
    """A path as a learner should see it: relative to the project when inside it."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(BASE_DIR))
    except ValueError:
        return str(path)


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, then rename: a kill never leaves half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
