"""LeNet-5 trained by several processes at once with torch.distributed, started by torchrun (notebook 05).

One machine, two processes on its CPU (or one process per GPU: `--nproc-per-node 8` on 8 GPUs):

    torchrun --standalone --nproc-per-node 2 -m lenet5_series.ddp --quick

Two machines: the same command on each, naming the first machine's address and a free port:

    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint 10.0.0.1:29400 \\
        --rdzv-id lenet5 -m lenet5_series.ddp --run-dir runs/two-machines

Data parallelism: every process (a "rank") holds a whole copy of LeNet-5 and all the training
tensors. Every step, all ranks cut the same shuffled global batch (the recipe's batch_size, 128)
into world_size equal shares and each trains on its own share; DistributedDataParallel averages
the gradients over the ranks (an all-reduce) during backward, so every copy takes the step that
one process would take on the whole batch. Rank 0 alone writes the run folder: the same files as
lh.fit, and metrics.json also says world_size. The parameters are notebook 03's, as options.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import lenet5_helpers as lh
from lenet5_series import runs, threads
from lenet5_series.mnist import MNIST_FILES, DataError

TIMEOUT = 30  # seconds a rank waits for the others in any collective before it stops with an error
LAUNCH = "torchrun --standalone --nproc-per-node 2 -m lenet5_series.ddp"


def init_process_group(device: str = "auto", timeout: float = TIMEOUT) -> tuple[int, int, torch.device]:
    """Join the job torchrun started: gloo on the CPU, NCCL on CUDA (one GPU per process).

    Returns (rank, world_size, device). `timeout` bounds every collective, so when another rank
    dies or hangs this one stops with an error instead of waiting for ever.
    """
    local_rank, per_machine = int(os.environ["LOCAL_RANK"]), int(os.environ["LOCAL_WORLD_SIZE"])
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        count = torch.cuda.device_count()
        if per_machine > count:
            raise ValueError(f"device='cuda': this machine has {count} CUDA GPU(s), but torchrun "
                             f"started {per_machine} processes on it. Pass --nproc-per-node {count} "
                             "or less (one process per GPU), or --device cpu.")
        torch.cuda.set_device(local_rank)
        where = torch.device("cuda", local_rank)
        dist.init_process_group("nccl", timeout=timedelta(seconds=timeout), device_id=where)
    elif device == "cpu":
        where = torch.device("cpu")
        dist.init_process_group("gloo", timeout=timedelta(seconds=timeout))
    else:
        raise ValueError(f"device={device!r} is not accepted here: torch.distributed trains on "
                         "'cpu' (the gloo backend) or 'cuda' (NCCL). Use auto, cpu or cuda.")
    return dist.get_rank(), dist.get_world_size(), where


def my_share(batch: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rank r's share of a global batch: the r-th of world_size equal slices.

    Equal shares make "each rank's mean loss, then DDP's average over ranks" the mean over the
    whole batch. A last batch that does not split evenly loses its last len % world_size items
    (at most world_size - 1 images per epoch, different ones each epoch).
    """
    share = len(batch) // world_size
    return batch[rank * share:(rank + 1) * share]


def steps_per_epoch(n_images: int, batch_size: int, world_size: int) -> int:
    """lh.steps_per_epoch for world_size ranks: the full batches, plus the last one if every rank
    gets an image of it."""
    full, rest = divmod(n_images, batch_size)
    return full + (rest >= world_size)


def train_epoch(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, optimizer: Any,
                scheduler: Any, batch_size: int, generator: torch.Generator, rank: int,
                world_size: int, augment: bool = False, amp: bool = False,
                label_smoothing: float = 0.0) -> None:
    """lh.train_epoch, data-parallel: each rank trains on its share of every global batch.

    Every rank draws the same permutation from the same seeded generator, so the ranks agree on
    the global batches without a word. With augment=True each rank distorts the whole global
    batch (the same random numbers everywhere) and keeps its share, as one process would.
    """
    model.train()
    order = torch.randperm(len(images), device=images.device, generator=generator)
    for start in range(0, len(images), batch_size):
        idx = order[start:start + batch_size]  # the global batch: the same on every rank
        x, y = images[idx], labels[idx]
        if augment:
            x = lh.random_distort(x, generator=generator)
        x, y = my_share(x, rank, world_size), my_share(y, rank, world_size)
        if len(x) == 0:  # a last batch with fewer images than ranks
            break
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(x), y, label_smoothing=label_smoothing)  # mean over my share
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # DDP all-reduces the gradients here: every rank gets their average
        optimizer.step()  # the same step on every rank: the copies stay identical
        scheduler.step()


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, rank: int,
             world_size: int) -> tuple[float, float]:
    """lh.evaluate split over the ranks: each scores its slice, an all-reduce adds the sums."""
    part = slice(rank * len(images) // world_size, (rank + 1) * len(images) // world_size)
    logits = lh.predict(model, images[part]).float()
    sums = torch.tensor([F.cross_entropy(logits, labels[part], reduction="sum").item(),
                         (logits.argmax(1) == labels[part]).sum().item()],
                        dtype=torch.float64, device=images.device)
    dist.all_reduce(sums)  # default op: SUM, and every rank gets the result
    return sums[0].item() / len(labels), sums[1].item() / len(labels)


@contextlib.contextmanager
def kept_run(run_dir: Path | None, config: dict, model: nn.Module, optimizer: Any, scheduler: Any,
             generator: torch.Generator, resume: bool, rank: int) -> Iterator[list[dict]]:
    """lh.fit's runs.kept_run for every rank: rank 0 claims the run folder, restores it and releases
    it at the end; in between it sends the checkpoint, or its refusal, to every rank, so all continue
    from the same state. Only rank 0 reads the folder: on several machines the others may not see it.
    The `with` block gets the history so far."""
    with contextlib.ExitStack() as rank_0_holds:
        message, error = [{}], None
        if rank == 0:
            try:
                if rank_0_holds.enter_context(runs.kept_run(run_dir, config, model, optimizer, scheduler,
                                                            generator, resume)):
                    message = [runs.load_checkpoint(run_dir / runs.CHECKPOINT)]
            except Exception as e:  # the others must not wait for a rank 0 that stopped
                error, message = e, [{"error": f"{e}"}]
        dist.broadcast_object_list(message, src=0)
        if error is not None:
            raise error
        ckpt = message[0]
        if "error" in ckpt:
            raise runs.RunError(ckpt["error"])
        if ckpt and rank != 0:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            generator.set_state(ckpt["rng"]["data"])
        yield list(ckpt.get("history", []))


def train(data: dict, run_dir: Path | None, config: dict, rank: int, world_size: int,
          device: torch.device, resume: bool = False) -> list[dict]:
    """lh.fit, data-parallel: the same recipe, epochs and run folder, written by rank 0 alone."""
    x_train, y_train = data["train"]
    net = lh.lenet5_for(config["recipe"]).to(device)  # "fast": LeNet5Fast, as notebook 03 builds it
    steps = steps_per_epoch(len(x_train), config["batch_size"], world_size)
    optimizer, scheduler = lh.make_optimizer(net, config, steps)  # the parameters themselves, as lh.fit
    generator = torch.Generator(device).manual_seed(config["seed"])
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    with kept_run(run_dir, config, net, optimizer, scheduler, generator, resume, rank) as history:
        if not history:  # as lh.fit: the same first weights on every rank
            lh.initialise(net, config["seed"])
        lh.use_memory_format(net, config)
        model = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
        finished = runs.already_finished(run_dir, history, config) if rank == 0 else None
        if finished or len(history) >= config["epochs"]:
            return history

        def one_epoch() -> None:
            train_epoch(model, x_train, y_train, optimizer, scheduler, config["batch_size"], generator,
                        rank, world_size, config["augment"],
                        config["amp"] or config.get(runs.MACHINE_BFLOAT16, False), config["label_smoothing"])

        return runs.run_epochs(run_dir, config, history, data, one_epoch,  # lh.fit's epochs, rows, lines
                               lambda split: evaluate(net, *data[split], rank, world_size), net,
                               optimizer, scheduler, generator,
                               write=(lambda line: print(line, flush=True)) if rank == 0 else None)


def wait_for_mnist(data_dir: Path, local_rank: int, limit: float = 600.0) -> None:
    """Local rank 0 prepares MNIST on its machine (lh.prepare_mnist); the others wait for it."""
    if local_rank == 0:
        lh.prepare_mnist(data_dir)
        return
    raw = data_dir / "MNIST" / "raw"
    deadline = time.monotonic() + limit
    while not all((raw / name).exists() for name in MNIST_FILES):  # written verified, renamed
        if time.monotonic() > deadline:
            raise DataError(f"MNIST did not appear in {lh.show_path(raw)} within {limit:.0f} s; "
                            "run `make data` on this machine first.")
        time.sleep(1.0)


def lost_contact(error: BaseException) -> bool:
    """Whether an error says another rank is gone: a collective failed (gloo raises a plain
    RuntimeError that names gloo; NCCL and timeouts raise torch.distributed.DistError)."""
    return isinstance(error, dist.DistError) or "gloo" in str(error).lower()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="torchrun [torchrun options] -m lenet5_series.ddp",
                                     description="Train LeNet-5 data-parallel (start it with "
                                     "torchrun; see this module's docstring).")
    parser.add_argument("--data-dir", default=None, help="MNIST folder (default: $LENET5_DATA_DIR, "
                        "else data/)")
    parser.add_argument("--run-dir", default=None, help="run folder on rank 0's machine "
                        "(default: a new runs/<date-time>/)")
    parser.add_argument("--seed", default=0)
    parser.add_argument("--device", default="auto", help="auto (cuda if present), cpu or cuda")
    parser.add_argument("--recipe", default="default", help="default or reference")
    parser.add_argument("--epochs", default=None)
    parser.add_argument("--batch-size", default=None, help="the global batch, split between ranks")
    parser.add_argument("--lr", default=None)
    parser.add_argument("--augment", action="store_true")
    parser.add_argument("--train-subset", default=None)
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    parser.add_argument("--quick", action="store_true", help="10,000 images, 3 epochs")
    parser.add_argument("--amp", action="store_true", help="bfloat16 mixed precision (CUDA only)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds a rank waits for "
                        f"the others before it stops with an error (default {TIMEOUT})")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, rank: int) -> dict:
    """Check the options, load the data, join the others, train; return the final metrics."""
    quiet = contextlib.redirect_stdout(io.StringIO()) if rank != 0 else contextlib.nullcontext()
    with quiet:  # the same checks run on every rank; rank 0 alone speaks
        p = lh.checked_params(data_dir=args.data_dir, seed=args.seed, recipe=args.recipe,
                              epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                              augment=args.augment, train_subset=args.train_subset,
                              quick=args.quick, amp=args.amp)
    wait_for_mnist(p["data_dir"], int(os.environ["LOCAL_RANK"]))
    rank, world_size, device = init_process_group(args.device, args.timeout)
    if p["amp"] and device.type != "cuda":
        raise ValueError("amp=True needs CUDA GPUs; this run uses the CPU. Drop --amp.")
    if device.type == "cpu":  # the CPU threads this machine's processes may use, shared out
        threads.use_cpu_threads(processes=int(os.environ["LOCAL_WORLD_SIZE"]))
    data = lh.mnist_tensors(p["data_dir"], device, p["train_subset"])
    config = dict(lh.run_config(p["recipe"], p["epochs"], p["batch_size"], p["lr"], p["seed"],
                                p["augment"], p["amp"], len(data["train"][0]), "LeNet5",
                                len(data["val"][0]) if "val" in data else 0),
                  world_size=world_size)
    config[runs.MACHINE_BFLOAT16] = lh.cpu_bfloat16(p["recipe"], device)  # as lh.fit: the fast recipe
    if config["batch_size"] % world_size:
        raise ValueError(f"batch_size={config['batch_size']} does not split into {world_size} equal "
                         f"shares; pass a batch_size that is a multiple of {world_size}.")
    run_dir = None
    if rank == 0:
        run_dir = Path(args.run_dir).expanduser() if args.run_dir else lh.new_run_dir()
        backend = dist.get_backend()
        print(f"{_count(world_size, 'process')} ({backend} on {device.type}): global batch "
              f"{config['batch_size']} = {world_size} x {config['batch_size'] // world_size} images, "
              f"{steps_per_epoch(config['train_size'], config['batch_size'], world_size)} steps "
              f"per epoch; run folder {lh.show_path(run_dir)}", flush=True)
    history = train(data, run_dir, config, rank, world_size, device, args.resume)
    return runs.metrics_from(dict(config, device=device.type), history)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}{'es' if noun.endswith('s') else 's'}"


def main(argv: list[str] | None = None) -> int:
    """The torchrun entry point: 0 when training finished, 1 with a message when it could not."""
    args = parse_args(argv)
    if "LOCAL_RANK" not in os.environ:
        print(f"Start this module with torchrun, which starts one process per rank, e.g.\n  "
              f"{LAUNCH} --quick", file=sys.stderr)
        return 2
    rank = int(os.environ["RANK"])
    try:
        metrics = run(args, rank)
    except (ValueError, runs.RunError, DataError) as e:  # said once per machine, not per rank
        if int(os.environ["LOCAL_RANK"]) == 0:
            print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    except RuntimeError as e:
        if not lost_contact(e):
            raise
        first = str(e).strip().splitlines()[0][:300]
        print(f"rank {rank}: lost contact with the other processes ({first}). Another rank died, hung "
              "or lost its machine (its own output says which); stopping this rank too.",
              file=sys.stderr, flush=True)
        return 1
    if rank == 0:
        print(f"test accuracy {metrics['test_accuracy']:.2%} after {_count(metrics['epochs'], 'epoch')} "
              f"on {_count(metrics['world_size'], 'process')}", flush=True)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
