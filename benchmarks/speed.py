"""Benchmark: seconds per epoch of the reference pipeline vs this project's training path, and the
default recipe's time to 99.0 % test accuracy. Prints its figures; asserts nothing.

    python benchmarks/speed.py [--device auto|cpu|cuda|mps] [--skip-reference]

(a) reference: PIL transforms through a DataLoader, batch 128, each batch copied to the device,
    LeNet-5, plain SGD step (lr 1e-3), as in the reference post.
(b) ours: the same model, batch size and SGD step, fed from tensors prepared once (on the device).
Targets (2-core CPU): (b)/(a) <= 0.40 and <= 45 s to 99 %; on an H100 <= 0.5 s/epoch and <= 5 s.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

import lenet5_helpers as lh


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def reference_epoch(data_root, device: torch.device) -> float:
    """One epoch exactly like the reference post: DataLoader + PIL transform + .to(device)."""
    torch.manual_seed(0)
    model = lh.LeNet5().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    loader = DataLoader(lh.load_mnist(data_root, train=True), batch_size=128, shuffle=True)
    model.train()
    sync(device)
    start = time.perf_counter()
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    sync(device)
    return time.perf_counter() - start


def our_epoch(data: dict, device: torch.device, amp: bool = False) -> float:
    """One epoch of lh.train_epoch with the same model, batch size and plain SGD step."""
    torch.manual_seed(0)
    model = lh.LeNet5().to(device)
    settings = lh.resolve_recipe("reference", epochs=1)
    optimizer, scheduler = lh.make_optimizer(model, settings, lh.steps_per_epoch(len(data["train"][0]), 128))
    generator = torch.Generator(device).manual_seed(0)
    sync(device)
    start = time.perf_counter()
    lh.train_epoch(model, *data["train"], optimizer, scheduler, 128, generator, amp=amp)
    sync(device)
    return time.perf_counter() - start


def time_to_99(data: dict, device: torch.device, amp: bool = False) -> tuple[float, int, float]:
    """Train the default recipe, evaluating the test set after each epoch, until 99.0 %."""
    lh.seed_everything(0)
    model = lh.LeNet5().to(device)
    settings = lh.resolve_recipe("default")
    optimizer, scheduler = lh.make_optimizer(model, settings, lh.steps_per_epoch(len(data["train"][0]), 128))
    generator = torch.Generator(device).manual_seed(0)
    start = time.perf_counter()
    for epoch in range(1, settings["epochs"] + 1):
        lh.train_epoch(model, *data["train"], optimizer, scheduler, 128, generator, amp=amp,
                       label_smoothing=settings["label_smoothing"])
        _, accuracy = lh.evaluate(model, *data["test"])
        if accuracy >= 0.99:
            return time.perf_counter() - start, epoch, accuracy
    return time.perf_counter() - start, settings["epochs"], accuracy


def cpu_name() -> str:
    """The CPU's model name where the system tells it, else the architecture."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=lh.DEVICES)
    parser.add_argument("--skip-reference", action="store_true", help="skip the slow reference")
    args = parser.parse_args()
    device = lh.pick_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    data_root = lh.prepare_mnist(verbose=False)
    data = lh.mnist_tensors(data_root, device, validation=False)  # all 60,000: 469 steps, as measured
    our_epoch(data, device)  # warm-up: first-call costs (kernels, allocator) are not an epoch's
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else cpu_name()
    figures = {"device": device.type, "device_name": name, "threads": torch.get_num_threads(),
               "torch": torch.__version__}
    print(f"LeNet-5 training speed on {device.type} ({name}, {torch.get_num_threads()} threads), "
          f"torch {torch.__version__}")
    if not args.skip_reference:
        figures["reference_s_per_epoch"] = reference_epoch(data_root, device)
        print(f"(a) reference pipeline (DataLoader + PIL):  {figures['reference_s_per_epoch']:6.2f} s/epoch")
    figures["ours_s_per_epoch"] = our_epoch(data, device)
    print(f"(b) our training path (tensors on device):   {figures['ours_s_per_epoch']:6.2f} s/epoch")
    if not args.skip_reference:
        figures["ratio"] = figures["ours_s_per_epoch"] / figures["reference_s_per_epoch"]
        print(f"    ratio (b)/(a): {figures['ratio']:.2f}   (target <= 0.40 on a 2-core CPU)")
    if device.type == "cuda":
        our_epoch(data, device, amp=True)  # warm-up: cudnn.benchmark picks bfloat16 kernels once
        figures["ours_amp_s_per_epoch"] = our_epoch(data, device, amp=True)
        print(f"(b) with amp=True (bfloat16):                {figures['ours_amp_s_per_epoch']:6.2f} s/epoch")
    seconds, epochs, accuracy = time_to_99(data, device)
    figures.update(time_to_99_s=seconds, epochs_to_99=epochs, accuracy_at_stop=accuracy)
    print(f"default recipe: {accuracy:.2%} test accuracy after {epochs} epochs, {seconds:.1f} s "
          f"(training + test evaluation; target <= 45 s on a 2-core CPU, <= 5 s on an H100)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
