"""How many CPU threads a run may use, so that runs sharing a machine do not fight over it.

torch starts one compute thread per core of the machine. Two such processes on the same cores
starve each other: their threads spin while they wait for one another at every operation (an
epoch measured at 0.74 s alone took 31 s beside another such run). So a run takes only the cores
it may really use:

- the cores this process may run on (its CPU affinity: `taskset`, a batch scheduler, a container);
- a CPU limit on its control group (cgroup), where there is one: a container's `--cpus`, a
  JupyterHub spawner's `cpu_limit`, a systemd `CPUQuota`; 1.5 cores gives 1 thread;
- and never more than torch would take by itself, so a lone run on a laptop is unchanged
  (torch's own count already follows OMP_NUM_THREADS, which is therefore respected too).

LENET5_THREADS=N overrides all of that (a sweep sets it for each of its kernels: its share).

Trainings that did not start one another (two notebooks in one JupyterLab, two papermill runs, the
users of a class server) find each other too: while lenet5_helpers.fit trains, SharedCores keeps a
file fresh in a shared folder and gives torch this run's share of the budget among the trainings
it sees there, and the whole budget again when it is alone.

torch's second pool, of inter-op threads (for running whole operations side by side), is left as
it is: nothing in the series uses it, its threads sleep while idle, and torch accepts a new size
only once, before any such work, so a notebook cell run twice would fail.
"""

from __future__ import annotations

import functools
import math
import os
import socket
import stat
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

VARIABLE = "LENET5_THREADS"
CGROUP_ROOT = Path("/sys/fs/cgroup")


def override(environ: Mapping[str, str] | None = None) -> int | None:
    """The thread count LENET5_THREADS asks for; None when it is unset or empty."""
    value = (os.environ if environ is None else environ).get(VARIABLE, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{VARIABLE}={value!r} is not accepted: it must be a whole number of threads "
                         f">= 1, e.g. {VARIABLE}=2, or unset to use the cores this process may use.")
    return int(value)


def affinity_cores() -> int:
    """How many cores this process may run on (all of them where the system cannot say)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def own_cgroups(proc_file: Path = Path("/proc/self/cgroup")) -> dict[str, str]:
    """This process's cgroup paths: {"": path} for cgroup v2, {"cpu": path} for v1's cpu controller."""
    found = {}
    try:
        lines = proc_file.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split(":", 2)  # "0::/user.slice/..." (v2) or "4:cpu,cpuacct:/docker/..." (v1)
        if len(parts) == 3 and (parts[1] == "" or "cpu" in parts[1].split(",")):
            found["" if parts[1] == "" else "cpu"] = parts[2]
    return found


def quota_in(folder: Path) -> float | None:
    """Cores allowed by the CPU quota written in one cgroup folder (v2 or v1); None for no limit."""
    try:
        if (folder / "cpu.max").exists():  # v2: "max 100000" or "150000 100000"
            quota, period = (folder / "cpu.max").read_text().split()[:2]
        else:  # v1: -1 means no limit
            quota = (folder / "cpu.cfs_quota_us").read_text().strip()
            period = (folder / "cpu.cfs_period_us").read_text().strip()
        if quota in ("max", "-1") or int(period) <= 0:
            return None
        return int(quota) / int(period)
    except (OSError, ValueError):
        return None


def cgroup_cores(root: Path | None = None, own: dict[str, str] | None = None) -> float | None:
    """The tightest CPU quota on this process's cgroup and the cgroups above it; None when none.

    root: where the cgroup file system is (CGROUP_ROOT); own: this process's cgroups (own_cgroups).
    A folder that is not there (a container sees its own cgroup as the root) is skipped.
    """
    root, own = CGROUP_ROOT if root is None else root, own_cgroups() if own is None else own
    limits = []
    for version, path in own.items():
        base = root if version == "" else root / "cpu"
        folder = base / path.strip("/")
        for candidate in [folder, *folder.parents]:
            if candidate.is_relative_to(base):
                limit = quota_in(candidate)
                if limit is not None:
                    limits.append(limit)
    return min(limits, default=None)


def budget(torch_default: int | None = None, environ: Mapping[str, str] | None = None,
           root: Path | None = None) -> tuple[int, str]:
    """The threads this process should use, and why in words, e.g. (1, "a CPU limit of 1.5 cores").

    torch_default: torch's own count (torch.get_num_threads() before anything changed it), which a
    lone run keeps; None for no such cap (the sweep runner, which does not import torch).
    """
    asked = override(environ)
    if asked is not None:
        return asked, f"{VARIABLE}={asked}"
    cores, quota = affinity_cores(), cgroup_cores(root)
    n, why = cores, f"this process may use {cores} {'core' if cores == 1 else 'cores'}"
    if torch_default is not None and torch_default < n:  # fewer physical cores, or OMP_NUM_THREADS
        n, why = torch_default, f"torch's default; {why}"
    if quota is not None and math.floor(quota) < n:
        n, why = math.floor(quota), f"a CPU limit of {quota:g} {'core' if quota == 1 else 'cores'}"
    return max(1, n), why


def share(total: int, jobs: int) -> int:
    """Each of `jobs` processes' share of `total` threads, at least 1."""
    return max(1, total // max(1, jobs))


@functools.cache
def torch_default() -> int:
    """torch's own thread count, read once, before use_cpu_threads changes it. (torch is imported
    here, not at the top: the sweep runner uses this module without loading torch.)"""
    import torch

    return torch.get_num_threads()


def use_cpu_threads(processes: int = 1) -> str:
    """Give torch only the CPU threads this run may use; return them in words.

    torch starts a thread per core of the whole machine; runs that share the cores (a sweep, two
    notebooks, a class server) then fight over them and each gets many times slower. This keeps
    torch's count for a lone run, fewer where the process may use fewer cores or has a CPU limit;
    LENET5_THREADS=N overrides it. `processes` started together on this machine (torchrun's ranks,
    a benchmark's workers) each get their share. The one place a run's thread budget is decided:
    the notebooks' parameter check (lenet5_helpers.checked_params), the torchrun trainer and the
    benchmarks call it; while fit trains, SharedCores shares that budget with other trainings.
    """
    import torch

    n, why = budget(torch_default())
    if processes > 1:
        n, why = share(n, processes), f"{why}, shared by {processes} processes"
    torch.set_num_threads(n)
    return f"{n} CPU thread{'s' if n > 1 else ''} ({why})"


# Trainings started independently (two notebooks in one JupyterLab, two papermill runs, a class
# server's users) see each other through one folder: each training keeps a file there fresh while
# it runs, and takes its share of the cores among the fresh files it sees.
REGISTRY = Path(tempfile.gettempdir()) / "lenet5-training"
LOOK_EVERY = 0.25  # seconds between looks at the folder (a look costs well under a millisecond)
FRESH = 30.0       # a file not touched for this long belongs to a training that stopped


def trainings_now(registry: Path | None = None, now: float | None = None) -> int:
    """How many trainings on this machine have touched their file in REGISTRY in the last FRESH seconds."""
    registry, now = registry or REGISTRY, time.time() if now is None else now
    try:
        entries = list(os.scandir(registry))
    except OSError:
        return 0
    count = 0
    for entry in entries:
        try:
            count += now - entry.stat().st_mtime < FRESH
        except OSError:  # removed as we looked
            pass
    return count


class SharedCores:
    """While a training runs: its share of this machine's threads among the trainings running now.

    torch's threads wait for one another by spinning; two trainings that each take every core
    spend their time waiting for the other's threads (measured: 43x slower each). So each training
    announces itself in REGISTRY and, four times a second (check), sets torch's threads to its share
    of the cores it may run on, never more than its budget: 2 cores and 2 trainings give 1 thread
    each; a user limited to 2 cores of a 32-core server with 16 trainings keeps 2. A lone training
    keeps its whole budget. With LENET5_THREADS set, or on a CUDA or MPS device, a training only
    announces itself (the others count it) and keeps its threads; a registry that cannot be used
    safely (not a folder, a link, not writable) turns the sharing off. At the end the threads it
    had before are given back. The registry is in the temporary folder: on Linux /tmp, which every
    user of the machine shares; on macOS and Windows each user has their own.
    """

    def __init__(self, device: Any = "cpu", registry: Path | None = None) -> None:
        self.registry, self.file, self.last, self.before = registry or REGISTRY, None, -math.inf, None
        self.adjust = getattr(device, "type", device) == "cpu" and override() is None
        self.total = budget(torch_default())[0] if self.adjust else None

    def announce(self) -> bool:
        """Make the registry (a folder every user may add to) and this training's file in it; False
        when that cannot be done safely."""
        try:
            try:
                self.registry.mkdir()
                os.chmod(self.registry, 0o1777)  # ours: every user may add a file, none remove others'
            except FileExistsError:
                pass
            if not stat.S_ISDIR(os.lstat(self.registry).st_mode):  # a link or a file: not ours to use
                return False
            self.file = self.registry / f"{socket.gethostname()}-{os.getpid()}-{id(self)}"
            self.file.touch()
            return True
        except OSError:
            self.file = None
            return False

    def __enter__(self) -> SharedCores:
        if not self.announce():
            time.sleep(0.1)  # another user may be making the folder right now: once more
            self.announce()
        if self.adjust:
            import torch

            self.before = torch.get_num_threads()
        self.check()
        return self

    def check(self) -> None:
        """At most once every LOOK_EVERY seconds: touch this training's file, count, set the threads."""
        if self.file is None or time.monotonic() - self.last < LOOK_EVERY:
            return
        self.last = time.monotonic()
        try:
            self.file.touch()  # a new time stamp: this training still runs
        except OSError:  # the folder went away (a clean-up of temporary files): make it again
            if not self.announce():
                return
        if self.adjust:
            import torch

            n = min(self.total, share(affinity_cores(), trainings_now(self.registry)))
            if torch.get_num_threads() != n:
                torch.set_num_threads(n)

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            self.file.unlink(missing_ok=True)
        if self.before is not None:
            import torch

            torch.set_num_threads(self.before)
