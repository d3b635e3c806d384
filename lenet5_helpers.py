"""Helpers for the LeNet-5 tutorial series: the code the notebooks teach, in the order they teach it.

Each function here is written out in a notebook first, or its docstring names the notebook section
that teaches its idea; the notebooks then call it as `lh.<name>`. Sections:
1. constants (01)   2. data (01, 03)   3. model (02)   4. shapes (02)   5. device (03)
6. training (03)   7. evaluation (03, 04, 07)   8. plots (01, 03, 04)   9. parameters (every notebook)
10. drawing a digit (06)

What no notebook teaches lives in the package lenet5_series: getting MNIST safely (mnist.py), run
folders and checkpoints (runs.py), running the series with papermill (runner.py), checking exercise
answers (exercises.py). The few of its names the notebooks call (`lh.prepare_mnist`,
`lh.check_answer`, ...) are imported here, so a notebook needs only `import lenet5_helpers as lh`.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision import transforms

# From lenet5_series, which no notebook teaches: parameter values, run folders, and (re-exported for
# the notebooks) getting MNIST, reading run folders and checking exercise answers.
from lenet5_series import runs, threads
from lenet5_series.exercises import check_answer  # noqa: F401
from lenet5_series.mnist import prepare_mnist, resolve_data_dir  # noqa: F401
from lenet5_series.params import as_bool, as_float, as_int
from lenet5_series.paths import show_path  # noqa: F401  (notebooks print run folders with it)
from lenet5_series.runs import (  # noqa: F401
    CHECKPOINT,
    choose_run,
    load_checkpoint,
    new_run_dir,
    read_history,
)

# --------------------------------------------------------------------------------------------
# 1. Constants
# --------------------------------------------------------------------------------------------

MEAN, STD = 0.5, 0.5
BACKGROUND = (0.0 - MEAN) / STD  # the background (pixel value 0, no ink) after Normalize
# The reference post's transform (notebook 01, section 4): PIL image (28x28) -> tensor (1, 32, 32)
# in [-1, 1].
REFERENCE_TRANSFORM = transforms.Compose([
    transforms.Grayscale(),
    transforms.Resize((32, 32)),
    transforms.ToTensor(),
    transforms.Normalize((MEAN,), (STD,)),
])


# --------------------------------------------------------------------------------------------
# 2. Data
# --------------------------------------------------------------------------------------------

def load_mnist(data_dir: str | Path | None = None, train: bool = True,
               transform: Any = REFERENCE_TRANSFORM) -> torchvision.datasets.MNIST:
    """The stock torchvision MNIST dataset with a transform, as the reference post uses it.

    Taught in notebook 01, "Batches with a DataLoader" (the dataset without a transform: notebook 01,
    "The dataset, as torchvision sees it").
    """
    root = resolve_data_dir(data_dir)
    return torchvision.datasets.MNIST(root, train=train, download=False, transform=transform)


def to_tensors(dataset: torchvision.datasets.MNIST) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference transform applied once to a whole dataset: (N, 1, 32, 32) floats, labels.

    Notebook 01, section 6. Resizing uint8 tensors, a whole chunk per call, matches PIL's per-image
    Resize to within one grey level.

    Taught in notebook 01, "The fast path: transform once, keep tensors".
    """
    # 10,000 images at a time: one call for all 60,000 would hold more memory at its peak
    x = torch.cat([transforms.functional.resize(chunk, [32, 32], antialias=True)
                   for chunk in dataset.data.unsqueeze(1).split(10_000)])
    x = x.float().div_(255).sub_(MEAN).div_(STD)  # (x / 255 - MEAN) / STD, in place: one copy in memory
    return x, dataset.targets.clone()


VALIDATION_SIZE = 5_000  # training images held out for choosing a recipe; never trained on
TRAIN_SIZE = 60_000 - VALIDATION_SIZE  # the training images left: 55,000


def mnist_tensors(data_dir: str | Path | None = None, device: str | torch.device = "cpu",
                  train_subset: int | None = None, validation: bool = True
                  ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{"train", "val", "test"}: (images, labels) on `device` (notebook 03, "The data: training,
    validation and test sets, as tensors on the device").

    Notebook 01's fast path, moved to the device. "val" is the 5,000 training images that
    split_validation holds out; "train" the other 55,000, of which train_subset keeps the first N.
    validation=False gives {"train" (all 60,000), "test"}, as before the split.
    """
    x, y = to_tensors(load_mnist(data_dir, train=True, transform=None))
    data = {}
    if validation:
        (x, y), data["val"] = split_validation(x, y)
    if train_subset:
        x, y = x[:train_subset], y[:train_subset]
    data["train"] = (x, y)
    data["test"] = to_tensors(load_mnist(data_dir, train=False, transform=None))
    return {split: (x.to(device), y.to(device)) for split, (x, y) in data.items()}


def split_validation(x: torch.Tensor, y: torch.Tensor, size: int = VALIDATION_SIZE
                     ) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Hold out `size` training images as a validation set: the same ones for every run and seed
    (a fixed seed of its own), so recipes are compared on the same digits (notebook 03). The rest
    keep their order.

    Taught in notebook 03, "The data: training, validation and test sets, as tensors on the device".
    """
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0)).to(x.device)
    held, keep = order[:size], order[size:].sort().values
    return (x[keep], y[keep]), (x[held], y[held])


# --------------------------------------------------------------------------------------------
# 3. Model
# --------------------------------------------------------------------------------------------

class LeNet5(nn.Module):
    """LeNet-5 as in the reference post: 3 convolutions, 2 max-pools, 2 linear layers; 61,706 weights.

    Notebook 02 builds it layer by layer, then writes this class out ("The whole network as one class").

    Taught in notebook 02, "The whole network as one class".
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, kernel_size=5)     # 1x32x32 -> 6x28x28
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)    # 6x14x14 -> 16x10x10
        self.conv3 = nn.Conv2d(16, 120, kernel_size=5)  # 16x5x5  -> 120x1x1
        self.pool = nn.MaxPool2d(2, 2)                  # halves height and width
        self.fc1 = nn.Linear(120, 84)
        self.fc2 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_shape(x)
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(self.conv3(x), 1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)


def check_input_shape(x: torch.Tensor) -> None:
    """Explain a wrong input shape in words instead of 'mat1 and mat2 shapes cannot be multiplied'.

    Notebook 02 shows the error a 28x28 digit would otherwise cause.

    Taught in notebook 02, "What a 28×28 digit does to LeNet-5".
    """
    if x.dim() == 4 and tuple(x.shape[1:]) == (1, 32, 32):
        return
    got = "x".join(str(s) for s in x.shape)
    hint = ""
    if tuple(x.shape[-2:]) == (28, 28):
        hint = (" MNIST digits are 28x28: resize them with transforms.Resize((32, 32)) (as "
                "REFERENCE_TRANSFORM does) or pad 2 pixels on each side with transforms.Pad(2).")
    raise ValueError(f"LeNet5 expects a batch of shape (N, 1, 32, 32); got {got}.{hint}")


# --------------------------------------------------------------------------------------------
# 4. Shapes
# --------------------------------------------------------------------------------------------

def conv_output_size(width: int, kernel: int, padding: int = 0, stride: int = 1) -> int:
    """Output width of a convolution or pooling layer: (W - K + 2P) / S + 1 (written out in 02).

    Taught in notebook 02, "How big is the output of a layer?".
    """
    return (width - kernel + 2 * padding) // stride + 1


def layer_table(model: nn.Module, input_shape: tuple[int, ...] = (1, 1, 32, 32)) -> list[dict]:
    """Run one zero batch through `model`; one row per leaf layer call: name, output shape, params.

    Notebook 02, "A shape table for any model": the by-hand shape checks, done by forward hooks.

    Taught in notebook 02, "A shape table for any model".
    """
    rows: list[dict] = []
    hooks = []
    for name, module in model.named_modules():
        if not list(module.children()):
            def hook(mod: nn.Module, inputs: Any, out: torch.Tensor, name: str = name) -> None:
                rows.append({"layer": name, "type": type(mod).__name__,
                             "output_shape": tuple(out.shape[1:]),
                             "params": sum(p.numel() for p in mod.parameters())})
            hooks.append(module.register_forward_hook(hook))
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros(input_shape, device=device))
    finally:
        for h in hooks:
            h.remove()
    return rows


def print_layer_table(rows: list[dict]) -> None:
    """Print layer_table's rows as an aligned table with the parameter total (notebook 02).

    Taught in notebook 02, "A shape table for any model".
    """
    print(f"{'layer':8} {'type':10} {'output shape':>14} {'params':>8}")
    for r in rows:
        print(f"{r['layer']:8} {r['type']:10} {str(r['output_shape']):>14} {r['params']:>8,}")
    total = sum(r["params"] for r in {r["layer"]: r for r in rows}.values())  # a reused layer once
    print(f"{'total':8} {'':10} {'':>14} {total:>8,}")


def _shape_label(shape: tuple[int, ...]) -> str:
    """'6@28×28' for a stack of maps (channels, height, width), '84' for a vector."""
    if len(shape) == 3:
        return f"{shape[0]}@{shape[1]}×{shape[2]}"
    return "×".join(str(s) for s in shape)


def _layer_label(name: str, module: nn.Module) -> str:
    """A layer's name and what it does, on two lines: 'conv1' and '5×5 conv', 'pool' and '2×2 max-pool'."""
    if isinstance(module, nn.Conv2d):
        return f"{name}\n{module.kernel_size[0]}×{module.kernel_size[1]} conv"
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        k = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
        return f"{name}\n{k}×{k} {'max' if isinstance(module, nn.MaxPool2d) else 'avg'}-pool"
    if isinstance(module, nn.Linear):
        return f"{name}\nlinear"
    return f"{name}\n{type(module).__name__}"


def draw_network(model: nn.Module, input_shape: tuple[int, ...] = (1, 1, 32, 32)) -> Any:
    """A diagram of `model`: every tensor from the input to the output, with its shape.

    The shapes come from layer_table (one zero batch through the model), so the picture cannot
    drift from the code. Maps are drawn as stacks of squares sized by their height and width,
    vectors as bars; between them, each layer's name, kind and parameter count.

    Taught in notebook 02, "The network we are going to build".
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    modules = dict(model.named_modules())
    rows = layer_table(model, input_shape)
    tensors = [tuple(input_shape[1:])] + [r["output_shape"] for r in rows]
    fig, ax = plt.subplots(figsize=(1.35 * len(tensors), 2.6), dpi=80)
    x, gap, step = 0.0, 3.2, 0.12  # where the next tensor starts, arrow length, stack offset
    for i, shape in enumerate(tensors):
        maps = len(shape) == 3 and shape[1] * shape[2] > 1  # a stack of maps, else a vector
        if maps:  # one square per channel (at most 6 drawn), 10 pixels per unit of length
            height, width, layers = shape[1] / 10, shape[2] / 10, min(shape[0], 6)
        else:  # one bar, 40 values per unit of length
            height, width, layers = max(0.25, min(shape[0], 160) / 40), 0.18, 1
        for k in range(layers):
            ax.add_patch(Rectangle((x + k * step, -height / 2 - k * step), width, height,
                                   facecolor="#dbe8f5" if maps else "#f5e2c8", edgecolor="black",
                                   linewidth=0.8))
        right = x + (layers - 1) * step + width
        bottom = -height / 2 - (layers - 1) * step
        ax.text((x + right) / 2, bottom - 0.25, _shape_label(shape), ha="center", va="top", fontsize=9)
        if i < len(rows):
            row = rows[i]
            label = _layer_label(row["layer"], modules[row["layer"]])
            if row["params"]:
                label += f"\n{row['params']:,} params"
            ax.annotate("", xy=(right + gap - 0.15, 0), xytext=(right + 0.15, 0),
                        arrowprops={"arrowstyle": "->", "color": "gray"})
            ax.text(right + gap / 2, 0.2, label, ha="center", va="bottom", fontsize=8)
        x = right + gap
    ax.set_xlim(-0.3, x - gap + 0.3)
    ax.set_ylim(-3.0, 2.4)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# 5. Device
# --------------------------------------------------------------------------------------------

DEVICES = ("auto", "cpu", "cuda", "mps")


def available_devices() -> list[str]:
    """The devices PyTorch can use on this machine, best first (notebook 03's `device` parameter).

    Taught in notebook 03, "The data: training, validation and test sets, as tensors on the device".
    """
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        found.append("mps")
    return found + ["cpu"]


def pick_device(device: str = "auto", verbose: bool = True) -> torch.device:
    """"auto" takes cuda, then mps, then cpu; a named device that is absent is an error, at once.

    Notebook 03's `device` parameter: the data and the model must both be moved to this device.
    verbose prints which device and why.

    Taught in notebook 03, "The data: training, validation and test sets, as tensors on the device".
    """
    if device not in DEVICES:
        raise ValueError(f"device={device!r} is not known; use one of {', '.join(DEVICES)}.")
    found = available_devices()
    picked = found[0] if device == "auto" else device
    if picked not in found:
        raise RuntimeError(f"device={device!r} was asked for, but this machine has no {device} "
                           f"device (available: {', '.join(found)}). Use device='auto' or 'cpu'.")
    if verbose:
        print(_device_words(device, picked))
    return torch.device(picked)


def _device_words(asked: str, picked: str) -> str:
    """The device chosen, and why: "device='auto' picked cpu: no GPU was found"."""
    why = {"cuda": "a CUDA GPU is present", "mps": "an Apple GPU (MPS) is present", "cpu": "no GPU was found"}
    return f"device='auto' picked {picked}: {why[picked]}" if asked == "auto" else f"device={asked!r}"


# --------------------------------------------------------------------------------------------
# 6. Training
# --------------------------------------------------------------------------------------------

RECIPES = {
    # The reference post: plain SGD, lr 1e-3, batch 128, 500 epochs (99.40 % train, 98.63 % test).
    "reference": {"lr": 1e-3, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0,
                  "schedule": "constant", "cycle_momentum": False, "label_smoothing": 0.0,
                  "batch_size": 128, "epochs": 500},
    # A modern recipe for the same network: Nesterov momentum, weight decay, a one-cycle learning
    # rate peaking at 0.15, label smoothing 0.1, 12 epochs. Measured over seeds (notebook 07;
    # website/results.md): benchmarks/results/final_test.csv. A peak of 0.2 sometimes kills the
    # network with augment=True. cycle_momentum=True: the one-cycle schedule also moves the momentum, 0.95 ->
    # 0.85 -> 0.95 against the learning rate, so "momentum" 0.9 is only used with cycle_momentum=False.
    "default": {"lr": 0.15, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
                "schedule": "onecycle", "cycle_momentum": True, "label_smoothing": 0.1,
                "batch_size": 128, "epochs": 12},
    # The default recipe in 2 epochs of batches of 96, its weights in the channels-last memory format
    # (notebook 07, "Where the time goes"). Chosen on the validation split among 24 candidates (2 or
    # 3 epochs, batches of 96, 128, 192 or 256, peaks 0.1, 0.15 or 0.2): of those whose mean validation
    # accuracy over 2 seeds is at least 98.9 %, the one with the fewest epochs
    # (benchmarks/results/fast_recipe.csv, written by benchmarks/speed.py --choose). It trains
    # LeNet5Fast, the same network computed in a cheaper order (lenet5_for).
    "fast": {"lr": 0.15, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
             "schedule": "onecycle", "cycle_momentum": True, "label_smoothing": 0.1,
             "batch_size": 96, "epochs": 2, "channels_last": True},
}
# The recipes that compute in bfloat16 mixed precision on a CPU with bfloat16 instructions
# (cpu_bfloat16; notebook 07, "bfloat16, where the CPU has it"): the fast one. Over 5 seeds its mean
# validation accuracy moved by 0.01 points, single seeds by at most 0.12 (benchmarks/results/
# speed_bf16.csv, written by benchmarks/speed.py --bf16).
BFLOAT16_ON_CPU = ("fast",)
RENAMED_RECIPES = {"seed": "reference"}  # old name -> new name, for a helpful error


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, so the same seed on the same machine, with the same number of
    threads, gives the same run (03; notebook 07, section 6, says when the thread count changes).

    Taught in notebook 03, "Before training: scores, probabilities, loss".
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def check_recipe(recipe: str) -> None:
    """Refuse an unknown recipe name (notebook 03 lists the recipes), pointing an old name to its new one.

    Taught in notebook 03, "The default recipe, written out".
    """
    if recipe in RECIPES:
        return
    if recipe in RENAMED_RECIPES:
        raise ValueError(f"recipe={recipe!r} is not accepted: the reference post's recipe is now "
                         f"called {RENAMED_RECIPES[recipe]!r}; pass recipe={RENAMED_RECIPES[recipe]!r}.")
    raise ValueError(f"recipe={recipe!r} is not accepted: use one of "
                     f"{', '.join(repr(r) for r in RECIPES)}.")


def resolve_recipe(recipe: str = "default", epochs: int | None = None,
                   batch_size: int | None = None, lr: float | None = None) -> dict:
    """The recipe's settings (notebook 03 prints them), with epochs, batch_size, lr overridden.

    Taught in notebook 03, "The default recipe, written out".
    """
    check_recipe(recipe)
    settings = dict(RECIPES[recipe], recipe=recipe)
    for key, value in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr)):
        if value is not None:
            settings[key] = value
    return settings


def steps_per_epoch(train_size: int, batch_size: int) -> int:
    """Batches in one pass over the training set; the last one may be smaller (03).

    Taught in notebook 03, "The learning rate over the run: one cycle".
    """
    return math.ceil(train_size / batch_size)


def make_optimizer(model: nn.Module, settings: dict, steps: int) -> tuple[Any, Any]:
    """SGD and its learning-rate schedule (stepped once per batch) for a recipe (03).

    `steps` is steps_per_epoch(...): the one-cycle schedule spans all the run's steps. Notebook 03,
    "The default recipe, written out", builds the same two objects by hand.

    Taught in notebook 03, "The default recipe, written out".
    """
    opt = torch.optim.SGD(model.parameters(), lr=settings["lr"], momentum=settings["momentum"],
                          nesterov=settings["nesterov"], weight_decay=settings["weight_decay"])
    if settings["schedule"] == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=settings["lr"], total_steps=settings["epochs"] * steps,
            cycle_momentum=settings.get("cycle_momentum", True))
    else:
        sched = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
    return opt, sched


def schedule_per_step(settings: dict, steps: int) -> dict[str, list[float]]:
    """The learning rate and momentum of every step of a run with these settings (notebook 03).

    A throwaway one-weight optimizer is built by make_optimizer and stepped through the whole run:
    the same schedule objects fit uses, so its values are the run's (03 checks them against history.csv).

    Taught in notebook 03, "The learning rate over the run: one cycle".
    """
    opt, sched = make_optimizer(nn.Linear(1, 1), settings, steps)
    values: dict[str, list[float]] = {"lr": [], "momentum": []}
    for _ in range(settings["epochs"] * steps):
        values["lr"].append(opt.param_groups[0]["lr"])
        values["momentum"].append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    return values


def random_distort(x: torch.Tensor, max_shift: float = 2.0, max_rotate: float = 15.0,
                   max_scale: float = 0.15, elastic: float = 0.0,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift, then turn and scale each image by its own small random amount (on x's device).

    A shift of up to `max_shift` pixels each way, then a turn of up to `max_rotate` degrees and a
    scaling by up to +-`max_scale` about the centre: one affine map per image, the kind of
    distortion LeCun et al. trained LeNet-5 with in 1998. Pixels from outside are background.
    Notebook 03, "Augmentation", writes it out as `distort`.
    With `elastic` > 0 each image is also bent like a rubber sheet, after Simard et al. 2003 (they
    smoothed a random move per pixel with a Gaussian; here 4x4 points move by random amounts,
    `elastic` pixels typical, and bicubic interpolation spreads those moves over every pixel).
    Notebook 07, section 3, shows bent digits; they made LeNet-5 worse (its table).

    Taught in notebook 03, "Augmentation: new digits for free".
    """
    n, _, h, w = x.shape
    u = torch.rand(n, 4, device=x.device, generator=generator) * 2 - 1  # uniform in [-1, 1]
    angle = torch.deg2rad(u[:, 0] * max_rotate)
    scale = 1 + u[:, 1] * max_scale
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    dx, dy = u[:, 2] * max_shift * 2 / w, u[:, 3] * max_shift * 2 / h  # the image spans -1..1
    theta = torch.stack([torch.stack([cos, -sin, dx], 1), torch.stack([sin, cos, dy], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    if elastic > 0:  # (n, 2, 4, 4) random moves in pixels -> a smooth (n, h, w, 2) field in -1..1 units
        moves = torch.randn(n, 2, 4, 4, device=x.device, generator=generator) * elastic
        field = F.interpolate(moves, size=(h, w), mode="bicubic", align_corners=True)
        grid = grid + field.permute(0, 2, 3, 1) * torch.tensor([2 / w, 2 / h], device=x.device)
    return F.grid_sample(x - BACKGROUND, grid, align_corners=False) + BACKGROUND  # 0 = background


def train_epoch(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, optimizer: Any,
                scheduler: Any, batch_size: int, generator: torch.Generator,
                augment: bool = False, amp: bool = False, label_smoothing: float = 0.0,
                on_step: Callable[[], Any] | None = None,
                distort: Callable[..., torch.Tensor] | None = None) -> None:
    """One epoch: the training images in a random order, batch by batch: forward, loss, backward, step.

    It is the loop of notebook 03, "The default recipe, written out", with two options. augment=True:
    each batch is first distorted, by random_distort (notebook 03, "Augmentation: new digits for
    free") or by the function given as `distort`. amp=True: on a GPU the forward pass runs in
    bfloat16 inside torch.autocast (notebook 03, "Only on a GPU: mixed precision"); with
    amp=False autocast changes nothing. on_step() runs after every step (fit's progress bar).

    Taught in notebook 03, "`lh.fit`: your loop, plus bookkeeping".
    """
    model.train()
    order = torch.randperm(len(images), device=images.device, generator=generator)
    for start in range(0, len(images), batch_size):
        idx = order[start:start + batch_size]
        x, y = images[idx], labels[idx]
        if augment:
            x = (distort or random_distort)(x, generator=generator)
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(x), y, label_smoothing=label_smoothing)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if on_step is not None:
            on_step()


def use_memory_format(model: nn.Module, settings: dict) -> nn.Module:
    """Store the model's weights channels-last when the recipe says so ("fast"), else leave them.

    Channels-last keeps a pixel's channels side by side in memory (N, H, W, C order underneath the
    same (N, C, H, W) shape), the layout oneDNN, the CPU library behind PyTorch's convolutions,
    prefers. The numbers are the same up to rounding; the input, with one channel, is the same either way.

    Taught in notebook 07, "Where the time goes".
    """
    if settings.get("channels_last"):
        model.to(memory_format=torch.channels_last)
    return model


class LeNet5Fast(LeNet5):
    """LeNet5, its weights name for name, computed in a cheaper order; the "fast" recipe trains it.

    Two rewrites that give the same scores, up to rounding, for less work on a CPU:
    - pooling before ReLU: ReLU never swaps two values' order (it sets the negative ones to 0),
      so ReLU of the largest of a 2x2 window's four values is the largest of the four after ReLU,
      and ReLU runs on a quarter of the values. Scores and gradients: the same to the last digit.
    - conv3 as one matrix multiply: on a 16x5x5 input a 5x5 kernel fits in one place only, so
      each of its 120 maps is one weighted sum of all 400 inputs, as in a linear layer.
    A run of it is recorded as a "LeNet5" (fit), and LeNet5 loads its checkpoints.

    Taught in notebook 07, "Where the time goes".
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_shape(x)
        x = F.relu(self.pool(self.conv1(x)))  # pool, then ReLU: the same numbers, 4x fewer ReLUs
        x = F.relu(self.pool(self.conv2(x)))
        x = F.linear(torch.flatten(x, 1), self.conv3.weight.flatten(1), self.conv3.bias)  # = conv3
        x = F.relu(self.fc1(x))
        return self.fc2(x)


def lenet5_for(recipe: str) -> LeNet5:
    """A new LeNet-5 for this recipe: LeNet5Fast for "fast", else LeNet5 (the same weights either way).

    fit(LeNet5(), ..., recipe="fast") trains the same numbers too, up to rounding, only slower.

    Taught in notebook 07, "Where the time goes".
    """
    return LeNet5Fast() if recipe == "fast" else LeNet5()


def cpu_has_bfloat16() -> bool:
    """Whether this CPU has x86 instructions that compute in bfloat16 (AVX-512 BF16 or AMX, as torch
    reads them from the CPU). Without them bfloat16 is emulated, and a step several times slower.
    Other CPUs (ARM ones included) count as without: untested here.

    Taught in notebook 07, "bfloat16, where the CPU has it".
    """
    capabilities = torch.cpu.get_capabilities()
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def cpu_bfloat16(recipe: str, device: torch.device | str) -> bool:
    """Whether a run of this recipe on this device (a torch.device or its type, "cpu", "cuda", ...)
    computes in bfloat16 on its own: the recipe asks for it on the CPU (BFLOAT16_ON_CPU: "fast"),
    the run is on the CPU, and the CPU has bfloat16 instructions (cpu_has_bfloat16).

    Taught in notebook 07, "bfloat16, where the CPU has it".
    """
    return recipe in BFLOAT16_ON_CPU and torch.device(device).type == "cpu" and cpu_has_bfloat16()


def run_config(recipe: str = "default", epochs: int | None = None, batch_size: int | None = None,
               lr: float | None = None, seed: int = 0, augment: bool = False, amp: bool = False,
               train_size: int = TRAIN_SIZE, arch: str = "LeNet5",
               val_size: int = VALIDATION_SIZE) -> dict:
    """Everything that makes two runs the same run (stored in the checkpoint, compared on resume; 03).

    Taught in notebook 03, "`lh.fit`: your loop, plus bookkeeping".
    """
    return dict(resolve_recipe(recipe, epochs, batch_size, lr), seed=seed, augment=augment,
                amp=amp, train_size=train_size, arch=arch, val_size=val_size)


def initialise(model: nn.Module, seed: int) -> nn.Module:
    """Give `model` the weights it gets when built right after seed_everything(seed) (03, 02).

    Each layer's reset_parameters runs in the order the layers were created, as in __init__.

    Taught in notebook 03, "LeNet-5, trained by a loop you write".
    """
    seed_everything(seed)
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return model


def fit(model: nn.Module, data: dict, run_dir: str | Path, recipe: str = "default",
        epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
        augment: bool = False, seed: int = 0, resume: bool = False, amp: bool = False,
        progress: bool = True, on_epoch: Callable[[list[dict]], Any] | None = None) -> list[dict]:
    """Train `model` on data["train"], evaluating it after every epoch (notebook 03).

    The same loop as notebook 03's hand-written epoch, plus a progress bar, exact evaluation and the
    run folder: after each epoch it gets checkpoint.pt, history.csv and metrics.json (each written
    atomically). With a "val" split, train and val are scored after every epoch and the test set
    once, after the last epoch (its columns stay empty before); without one, train and test after
    every epoch. on_epoch(history) runs after each epoch (03 redraws its curves with it). A new run
    starts from the weights `seed` gives (initialise), so the seed recorded is the seed used.
    resume=True continues from checkpoint.pt; a finished run with the same settings is loaded
    instead of trained again, so re-running the cell is safe. On the CPU it shares the cores with the
    other trainings running on the machine (notebook 07, "Two trainings on one machine"). Returns the
    history.

    Taught in notebook 03, "`lh.fit`: your loop, plus bookkeeping".
    """
    from tqdm.auto import tqdm

    run_dir = Path(run_dir)
    x_train, y_train = data["train"]
    device = x_train.device
    model_device = next(model.parameters()).device
    if model_device.type != device.type:
        raise ValueError(f"The model is on {model_device.type} but the data is on {device.type}; "
                         "move the model first: model = model.to(device).")
    arch = "LeNet5" if type(model) in (LeNet5, LeNet5Fast) else type(model).__name__  # the same weights
    config = run_config(recipe, epochs, batch_size, lr, seed, augment, amp, len(x_train),
                        arch, len(data["val"][0]) if "val" in data else 0)
    # the fast recipe on a CPU with bfloat16 instructions computes in bfloat16 (notebook 07); recorded
    # in metrics.json, not part of what makes two runs the same (the same run on another CPU)
    config[runs.MACHINE_BFLOAT16] = cpu_bfloat16(recipe, device)
    steps = steps_per_epoch(len(x_train), config["batch_size"])
    # the optimizer holds the model's parameter tensors themselves; initialise and channels-last
    # (below) change them in place, so it keeps holding the ones that train
    optimizer, scheduler = make_optimizer(model, config, steps)
    generator = torch.Generator(device).manual_seed(seed)
    # the run folder: locked, restored (resume, or a finished run loaded), released at the end
    with runs.kept_run(run_dir, config, model, optimizer, scheduler, generator, resume) as history:
        if not history:  # a new run: the first weights `seed` gives (a restored run has its own)
            initialise(model, seed)
        use_memory_format(model, config)
        if runs.already_finished(run_dir, history, config):
            return history
        # One refresh a second keeps the notebook's message channel light. TQDM_DISABLE=1 (set by
        # the series' runner) turns the bar off, so stored notebooks keep only the epoch lines.
        bar = tqdm(total=(config["epochs"] - len(history)) * steps, unit="batch", mininterval=1.0,
                   **({} if progress else {"disable": True}))
        with threads.SharedCores(device) as cores:  # other trainings on this machine: share its cores

            def step_done() -> None:
                bar.update(1)
                cores.check()

            def one_epoch() -> None:
                bar.set_description(f"epoch {len(history) + 1}/{config['epochs']}")
                train_epoch(model, x_train, y_train, optimizer, scheduler, config["batch_size"],
                            generator, augment, amp or config[runs.MACHINE_BFLOAT16],
                            config["label_smoothing"], step_done)

            runs.run_epochs(run_dir, config, history, data, one_epoch,
                            lambda split: evaluate(model, *data[split]), model, optimizer,
                            scheduler, generator, write=bar.write, on_epoch=on_epoch)
        bar.close()
    return history


def run_to_read(run_dir: str | Path | None, data_root: str | Path, device: torch.device,
                seed: int = 0) -> tuple[Path, str]:
    """The run folder notebooks 04, 06 and 07 read, and why, in words (04, "Which run?").

    A run_dir given is used. run_dir=None: the newest finished run on all the training images, else
    the newest finished shorter one (choose_run). With no finished run there, a short run (QUICK's
    images and epochs) is trained here, so the notebook still runs from top to bottom.

    Taught in notebook 04, "Which run?".
    """
    folder, why = (Path(run_dir), "the run_dir you passed") if run_dir is not None else choose_run()
    if folder is not None and (folder / "metrics.json").exists():
        return folder, why if run_dir is not None else f"run_dir=None: {why}"
    print("There is no finished training run yet. Run notebook 03 (or `make run`) for a full one.")
    print(f"Training a short one now ({QUICK['train_subset']:,} images, {QUICK['epochs']} epochs) "
          "so this notebook can go on ...")
    folder = folder or new_run_dir()
    short = mnist_tensors(data_root, device, QUICK["train_subset"])
    fit(LeNet5().to(device), short, folder, epochs=QUICK["epochs"], seed=seed)
    return folder, "no finished run was there, so this notebook trained a short one"


# --------------------------------------------------------------------------------------------
# 7. Evaluation
# --------------------------------------------------------------------------------------------

# Images per chunk when scoring. The largest chunk within 5 % of the quickest for both LeNet5 and
# LeNet5Fast, measured on a 2-core CPU: there LeNet5 scored the 55,000 training images in twice the
# time 2,000 at a time, likely as a chunk's maps outgrew the CPU's cache (notebook 07, "Scoring after
# every epoch"; benchmarks/results/scoring.csv, written by benchmarks/speed.py --scoring).
SCORING_CHUNK = 500


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = SCORING_CHUNK) -> torch.Tensor:
    """The model's logits for every image, in evaluation mode, without gradients, in chunks (03).

    Chunk by chunk, so memory stays small whatever the number of images; each image's scores are
    the same, up to rounding, whatever the chunk size.

    Taught in notebook 04, "Predictions on the test set".
    """
    model.eval()
    return torch.cat([model(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Exact mean loss and accuracy over all images; every image counts once (03, "Measuring it exactly").

    Taught in notebook 03, "Measuring it exactly: evaluation mode and no gradients".
    """
    logits = predict(model, images).float()
    loss = F.cross_entropy(logits, labels, reduction="sum").item() / len(labels)
    correct = (logits.argmax(1) == labels).sum().item()
    return loss, correct / len(labels)


def confusion_matrix(labels: torch.Tensor, preds: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """counts[true, predicted], computed with one bincount (notebook 04, "The confusion matrix")."""
    flat = labels.cpu() * num_classes + preds.cpu()
    return torch.bincount(flat, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def shift_images(images: torch.Tensor, dx: int, dy: int, fill: float = BACKGROUND) -> torch.Tensor:
    """Move every image dx whole pixels right and dy down (negative: left, up); notebook 04
    writes it out.  Pixels pushed out of the frame are lost; those coming in
    are `fill`, the background by default.

    Taught in notebook 04, "Shifted digits".
    """
    h, w = images.shape[-2:]
    padded = F.pad(images, (abs(dx), abs(dx), abs(dy), abs(dy)), value=fill)
    top, left = abs(dy) - dy, abs(dx) - dx
    return padded[..., top:top + h, left:left + w]


TTA_SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))  # the digit, and moved one pixel each way


@torch.no_grad()
def predict_tta(model: nn.Module, images: torch.Tensor,
                shifts: tuple[tuple[int, int], ...] = TTA_SHIFTS) -> torch.Tensor:
    """Test-time augmentation: each image's class probabilities, averaged over shifted copies of it.

    Four shifted readings can outvote a slip on the original, if the network reads shifted digits
    well (as after training with augment=True). Notebook 07, section 4, writes it out; whether it
    pays is measured on the validation split (benchmarks/tta.py).

    Taught in notebook 07, "Reading each digit five times (test-time augmentation)".
    """
    return sum(F.softmax(predict(model, shift_images(images, dx, dy)).float(), 1)
               for dx, dy in shifts) / len(shifts)


# --------------------------------------------------------------------------------------------
# 8. Plots
# --------------------------------------------------------------------------------------------

REFERENCE_POST_TEST = 0.9863  # the reference post, 500 epochs of plain SGD
LECUN_1998_TEST = 1 - 0.0095   # LeCun et al. 1998, LeNet-5 without distortions


def save_figure(fig: Any, run_dir: str | Path, name: str) -> Path:
    """Save `fig` as <run_dir>/figures/<name>.png at a small size, and return the path (04).

    Taught in notebook 04, "Learning curves".
    """
    folder = Path(run_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=80, bbox_inches="tight")
    return path


def plot_digits(images: torch.Tensor, titles: list[str], columns: int = 8) -> Any:
    """A grid of digits (any of 28x28 uint8 or normalised 1x32x32) with a title above each (01, 3).

    Taught in notebook 01, "Looking at the digits".
    """
    import matplotlib.pyplot as plt

    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.9, rows * 1.05), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title in zip(axes.flat, images, titles, strict=False):
        ax.imshow(image.detach().cpu().float().squeeze(), cmap="gray_r")
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def plot_history(history: list[dict], fig: Any = None) -> Any:
    """Loss and accuracy per epoch for train, val and test, with the two reference results (03, 04).

    A split is drawn where the history has figures for it: a run with a validation split scored
    the test set once, after its last epoch, so test is one point there. The accuracy axis fits the
    run's own figures, so a run at 20 % is as visible as one at 99 %. Given `fig`, it is cleared and
    drawn again (notebook 03 redraws one figure after every epoch).

    Taught in notebook 03, "The full run"; notebook 04, "Learning curves".
    """
    import matplotlib.pyplot as plt

    fig = fig or plt.figure(figsize=(10, 3.5))
    fig.clear()
    left, right = fig.subplots(1, 2)
    lowest = 1.0
    for split in ("train", "val", "test"):
        rows = [h for h in history if h.get(f"{split}_accuracy") is not None]
        if rows:
            epochs = [h["epoch"] for h in rows]
            left.plot(epochs, [h[f"{split}_loss"] for h in rows], "o-", label=split)
            right.plot(epochs, [100 * h[f"{split}_accuracy"] for h in rows], "o-", label=split)
            lowest = min([lowest] + [h[f"{split}_accuracy"] for h in rows])
    right.axhline(100 * REFERENCE_POST_TEST, color="gray", ls="--",
                  label="reference post's final result, after 500 epochs (98.63 %)")
    right.axhline(100 * LECUN_1998_TEST, color="black", ls=":",
                  label="LeCun et al. 1998's final result (99.05 %)")
    left.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    right.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy",
              ylim=(max(0.0, min(98.0, 100 * lowest) - 1), 100))
    if history:
        left.legend()
    right.legend(fontsize=8, loc="best")  # where it hides the fewest points: a slow climb stays visible
    fig.tight_layout()
    return fig


def live_history_plot() -> Callable[[list[dict]], Any]:
    """Show empty learning curves below the cell now; return `redraw(history)`, which redraws them.

    Pass `redraw` to fit as `on_epoch`: after every epoch fit calls it with the history so far, and
    the curves (plot_history) are redrawn in the same place below the cell, not added once more.
    `redraw` returns the figure. Outside Jupyter the figure is drawn, and only its name printed.

    Taught in notebook 03, "The full run".
    """
    import matplotlib.pyplot as plt
    from IPython.display import display

    fig = plot_history([])
    plt.close(fig)  # shown by the display below only, not once more when the cell ends
    shown = display(fig, display_id=True)  # a place in the cell's output that can be updated

    def redraw(history: list[dict]) -> Any:
        plot_history(history, fig)
        if shown is not None:
            shown.update(fig)
        return fig

    return redraw


# --------------------------------------------------------------------------------------------
# 9. Parameters
# --------------------------------------------------------------------------------------------

QUICK = {"train_subset": 10_000, "epochs": 3}  # quick=True: the whole series in a couple of minutes
PARAMETERS = ("data_dir", "run_dir", "seed", "device", "recipe", "epochs", "batch_size", "lr",
              "augment", "train_subset", "resume", "quick", "amp")


def checked_params(**params: Any) -> dict:
    """The notebook's parameters, checked and cleaned, before any long work (notebook 01 explains).

    Pass them by name (checked_params(seed=seed, ...)); an unknown name is refused, naming the
    accepted ones. Strings from papermill are accepted where they mean the right thing ("3" for
    epochs). Every error names the parameter, the value given and what is accepted. The result is a
    new dict: the notebook's own parameter variables stay as they are.

    First used in notebook 01. Taught in notebook 03, "The data: training, validation and test sets, as
    tensors on the device".
    """
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise TypeError(f"checked_params got unknown parameter(s) {', '.join(unknown)}; the "
                        f"parameters are {', '.join(PARAMETERS)}.")
    p = dict(params)
    for name in ("augment", "resume", "quick", "amp"):
        if name in p:
            p[name] = as_bool(name, p[name])
    if p.get("quick"):
        filled = {name: value for name, value in QUICK.items() if name in p and p[name] is None}
        p.update(filled)
        if filled:
            print("QUICK MODE: " + ", ".join(f"{k}={v:,}" for k, v in filled.items()))
    if p.get("seed") is not None:
        p["seed"] = as_int("seed", p["seed"], 0)
    for name in ("epochs", "batch_size"):
        if p.get(name) is not None:
            p[name] = as_int(name, p[name], 1)
    if p.get("train_subset") is not None:
        p["train_subset"] = as_int("train_subset", p["train_subset"], 1, TRAIN_SIZE)
    if p.get("lr") is not None:
        p["lr"] = as_float("lr", p["lr"])
    if "recipe" in p:
        check_recipe(p["recipe"])
    if "data_dir" in p:
        p["data_dir"] = resolve_data_dir(p["data_dir"])
    if p.get("run_dir") is not None:
        p["run_dir"] = Path(p["run_dir"]).expanduser()
        if p["run_dir"].exists() and not p["run_dir"].is_dir():
            raise ValueError(f"run_dir={str(params['run_dir'])!r} is a file; pass a folder.")
    if "device" in p:
        p["device"] = pick_device(str(p["device"]), verbose=False)
        # and this run's CPU threads (any device computes on the CPU too): the one place a notebook sets them
        print(f"{_device_words(str(params['device']), p['device'].type)}; {threads.use_cpu_threads()}")
        if p.get("amp") and p["device"].type != "cuda":
            raise ValueError(f"amp=True is not accepted here: it asks for bfloat16 mixed precision on a "
                             f"CUDA GPU, and this run uses {p['device'].type}. Pass amp=False (on a CPU "
                             "with bfloat16 instructions the fast recipe computes in bfloat16 by itself: "
                             "notebook 07).")
    if "recipe" in p:  # a training notebook: may this run use run_dir?
        settings = {k: p[k] for k in ("recipe", "epochs", "batch_size", "lr", "seed", "augment",
                                      "amp") if k in p}
        config = run_config(**settings, train_size=p.get("train_subset") or TRAIN_SIZE)
        runs.checkpoint_to_continue(p.get("run_dir"), config, bool(p.get("resume")))
    return p


# --------------------------------------------------------------------------------------------
# 10. Drawing a digit (notebook 06): strokes -> an MNIST-style digit -> LeNet-5's input
# --------------------------------------------------------------------------------------------

CANVAS_SIZE = 280  # the drawing canvas, in pixels: ten times MNIST's 28
PEN_WIDTH = 28     # the pen for a digit 200 pixels tall; it follows the drawing's size (pen_for)
MIN_PEN = 2        # the thinnest pen, in canvas pixels: a single click is still a dot


def pen_for(strokes: list[list[tuple[float, float]]]) -> float:
    """The pen width for a drawing: PEN_WIDTH for a digit 200 pixels tall or wide, in proportion.

    Notebook 06, section 4. The digit is scaled into MNIST's 20x20 box, strokes and all: with one
    fixed pen, a digit drawn small would get far thicker strokes than MNIST's. A pen in proportion
    to the drawing's size (the longer side of the box around its points) gives every digit the
    same stroke width after the scaling.

    Taught in notebook 06, "Drawn small, large or off-centre".
    """
    xs = [float(x) for stroke in strokes for x, _ in stroke]
    ys = [float(y) for stroke in strokes for _, y in stroke]
    extent = max(max(xs) - min(xs), max(ys) - min(ys)) if xs else 0.0
    return max(PEN_WIDTH * extent / 200, MIN_PEN)


def strokes_to_image(strokes: list[list[tuple[float, float]]], size: int = CANVAS_SIZE,
                     pen: float | None = None) -> torch.Tensor:
    """Draw strokes (each a list of (x, y) canvas points) as white ink on black: (size, size) uint8.

    Notebook 06, section 1. A pixel (x, y) is ink when it lies within half a pen width of a stroke:
    the round pen leaves round ends, and a single click is a dot. The ink is black and white only,
    as on the NIST forms that MNIST came from; grey levels appear later, when the digit is scaled
    down. pen=None: the pen follows the drawing's size (pen_for).

    Taught in notebook 06, "Strokes".
    """
    r = (pen_for(strokes) if pen is None else float(pen)) / 2
    ink = np.zeros((size, size), dtype=bool)
    for stroke in strokes:
        points = [(float(x), float(y)) for x, y in stroke]
        for (x0, y0), (x1, y1) in zip(points, points[1:] or points, strict=False):
            # only the pixels near this piece of the stroke; each one's distance to it
            left, right = max(math.floor(min(x0, x1) - r), 0), min(math.ceil(max(x0, x1) + r), size - 1)
            top, bottom = max(math.floor(min(y0, y1) - r), 0), min(math.ceil(max(y0, y1) + r), size - 1)
            if left > right or top > bottom:
                continue
            px, py = np.meshgrid(np.arange(left, right + 1.0), np.arange(top, bottom + 1.0))
            dx, dy, vx, vy = px - x0, py - y0, x1 - x0, y1 - y0
            length2 = vx * vx + vy * vy
            t = np.clip((dx * vx + dy * vy) / length2, 0, 1) if length2 > 0 else 0.0
            ex, ey = dx - t * vx, dy - t * vy
            ink[top:bottom + 1, left:right + 1] |= ex * ex + ey * ey <= r * r
    return torch.from_numpy(ink.astype(np.uint8) * 255)


def area_overlaps(n_in: int, n_out: int, side: int, box: int) -> np.ndarray:
    """(n_out, n_in) integers: how much of input pixel j falls into output pixel i, in units of
    1/box of an input pixel, when `side` input pixels become `box` output pixels (center_digit;
    notebook 06, "Making it look like an MNIST digit", uses it by hand).

    Example: 5 pixels into 2, area_overlaps(5, 2, 5, 2) = [[2, 2, 1, 0, 0], [0, 0, 1, 2, 2]] in
    halves of a pixel: each output pixel takes two input pixels whole and half of the middle one.
    Whole numbers, so that any program that counts the same way gets the same digit."""
    edges_in = np.arange(n_in + 1) * box     # input pixel j spans [j*box, (j+1)*box)
    edges_out = np.arange(n_out + 1) * side  # output pixel i spans [i*side, (i+1)*side)
    start = np.maximum(edges_out[:-1, None], edges_in[None, :-1])
    end = np.minimum(edges_out[1:, None], edges_in[None, 1:])
    return np.clip(end - start, 0, None)


def center_digit(image: torch.Tensor, box: int = 20, field: int = 28) -> torch.Tensor:
    """MNIST's normalisation of a drawn digit: a (field, field) uint8 image (notebook 06, section 2).

    As LeCun, Cortes and Burges describe it: the digit's bounding box is scaled to fit a box x box
    square keeping its aspect ratio (each new pixel gets the share of its area that the ink
    covers: the edges become grey levels), then placed in the field so that its centre of mass is
    at pixel (14, 14), where MNIST's digits have it. A blank image stays blank. Whole numbers
    only, so a web page can do exactly the same.

    Taught in notebook 06, "Making it look like an MNIST digit".
    """
    rows = image.any(dim=1).nonzero().flatten()
    cols = image.any(dim=0).nonzero().flatten()
    if len(rows) == 0:
        return torch.zeros(field, field, dtype=torch.uint8)
    digit = (image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] > 0).numpy().astype(np.int64)
    h, w = digit.shape
    side = max(h, w)
    new_h, new_w = -(-h * box // side), -(-w * box // side)  # rounded up: all the ink fits
    covered = area_overlaps(h, new_h, side, box) @ digit @ area_overlaps(w, new_w, side, box).T
    small = (2 * 255 * covered + side * side) // (2 * side * side)  # 255 x the inked share, rounded
    total = int(small.sum())
    if total == 0:  # ink too thin to leave a grey level
        return torch.zeros(field, field, dtype=torch.uint8)
    cy = int((small.sum(axis=1) * np.arange(new_h)).sum()) / total  # centre of mass, in pixels
    cx = int((small.sum(axis=0) * np.arange(new_w)).sum()) / total
    top = min(max(round(field / 2 - cy), 0), field - new_h)  # keep the whole digit inside
    left = min(max(round(field / 2 - cx), 0), field - new_w)
    out = torch.zeros(field, field, dtype=torch.uint8)
    out[top:top + new_h, left:left + new_w] = torch.from_numpy(small.astype(np.uint8))
    return out


def digit_to_input(digit: torch.Tensor) -> torch.Tensor:
    """A 28x28 uint8 digit as LeNet-5's input (1, 1, 32, 32) in [-1, 1], exactly as to_tensors gives it.

    Notebook 06, section 3 writes it out.

    Taught in notebook 06, "What the network reads".
    """
    x = transforms.functional.resize(digit.reshape(1, 1, 28, 28), [32, 32], antialias=True)
    return (x.float() / 255 - MEAN) / STD


@torch.no_grad()
def digit_probabilities(model: nn.Module, strokes: list[list[tuple[float, float]]],
                        size: int = CANVAS_SIZE) -> torch.Tensor:
    """LeNet-5's ten probabilities (softmax of its logits) for a digit drawn as strokes (notebook 06).

    Taught in notebook 06, "What the network reads".
    """
    x = digit_to_input(center_digit(strokes_to_image(strokes, size)))
    device = next(model.parameters()).device
    return F.softmax(predict(model, x.to(device)).float(), dim=1)[0].cpu()


def export_for_browser(model: nn.Module, path: str | Path, about: dict) -> Path:
    """Write the network's weights to a JSON file that a web page can run (notebook 06, section 5).

    For each layer's tensor (conv1.weight, conv1.bias, ...): its shape, and its numbers as 4-byte
    floats (little-endian, as browsers read them) in base64 text. `about` says which run it is.
    A page's JavaScript decodes each tensor into a Float32Array and does the forward pass of
    notebook 02 by hand, with loops: no framework, nothing to install.

    Taught in notebook 06, "The network in a web page".
    """
    import base64
    import json

    tensors = {name: {"shape": list(t.shape),
                      "data": base64.b64encode(t.detach().cpu().float().numpy().astype("<f4").tobytes()
                                               ).decode("ascii")}
               for name, t in model.state_dict().items()}
    path = Path(path)
    path.write_text(json.dumps({"about": about, "tensors": tensors}, indent=1) + "\n", encoding="utf-8")
    return path


def show_live_or_picture(widget: Any, png: bytes) -> None:
    """Show a widget as the cell's output, with a picture to show where the widget cannot live.

    Notebook 06, section 6. An output holds several forms of the same thing and each viewer shows
    the richest it can: JupyterLab with a running kernel the live widget, a stored notebook (the
    website, a closed kernel) the PNG picture.

    Taught in notebook 06, "Draw your own".
    """
    import base64

    from IPython.display import display

    view = {k: v for k, v in widget._repr_mimebundle_().items() if k != "text/plain"}  # not its repr
    display({**view, "image/png": base64.b64encode(png).decode("ascii")}, raw=True)


# --------------------------------------------------------------------------------------------
# 11. notebook 08 · LeNet-5 of 1998: the paper's network and its training, written out
# LeCun, Bottou, Bengio, Haffner, "Gradient-Based Learning Applied to Document Recognition",
# Proc. IEEE 86(11), 1998: the network in section II.B, its training in section III.B and
# Appendix C. Notebook 08 teaches every piece; benchmarks/lenet1998.py runs the full reproduction.
# --------------------------------------------------------------------------------------------

PAPER_1998 = {  # the paper's own figures, with their sections (notebook 08 quotes them from here)
    "test_error": 0.0095,            # III.B: 0.95 % test error, trained on the 60,000 images
    "train_error_19": 0.0035,        # III.B: 0.35 % training error after 19 passes
    "test_error_distortions": 0.008,  # III.B: 0.8 % when trained with distortions
    "passes": 20,                    # III.B: 20 passes over the training set
    "hessian_samples": 500,          # III.B: the second derivatives re-estimated on 500 samples
    "mu": 0.02,                      # III.B: the Levenberg-Marquardt constant
}
# II.B: each layer's trainable parameters and connections
PAPER_1998_LAYERS = {"C1": (156, 122_304), "S2": (12, 5_880), "C3": (1_516, 151_600),
                     "S4": (32, 2_000), "C5": (48_120, 48_120), "F6": (10_164, 10_164)}
# III.B: the global learning rate eta: 0.0005 for the first 2 passes, 0.0002 for the next 3,
# 0.0001 for the next 3, 0.00005 for the next 4, 0.00001 after: (passes, eta), None = the rest
ETA_1998 = ((2, 5e-4), (3, 2e-4), (3, 1e-4), (4, 5e-5), (None, 1e-5))
SQUASH_A, SQUASH_S = 1.7159, 2 / 3          # II.B and Appendix A: f(a) = A tanh(S a)
BACKGROUND_1998, INK_1998 = -0.1, 1.175     # II.B: the input's white and black
MAP_J = 5.0  # j of the MAP loss (II.B: no value), chosen on the validation split (notebook 08, section 11)
MU_1998 = 0.5   # mu we train with at BATCH_1998, chosen on the validation split: the paper's 0.02
                # saturates the network (notebook 08, section 7)
BATCH_1998 = 8  # images per update in benchmarks/lenet1998.py; the paper: 1 (notebook 08, section 10)
C3_TABLE_1998 = (  # Table I (II.B): C3_TABLE_1998[i][j] is "X" when C3 map j sees S2 map i
    "X...XXX..XXXX.XX",
    "XX...XXX..XXXX.X",
    "XXX...XXX..X.XXX",
    ".XXX..XXXX..X.XX",
    "..XXX..XXXX.XX.X",
    "...XXX..XXXX.XXX",
)
# The ten output bitmaps, 7 wide and 12 high (84 = 7 x 12, II.B): "#" is +1, "." is -1. The
# paper shows its own only as a picture (its Fig. 3); these are drawn after it, not copied.
RBF_DIGITS_1998 = (
    (".......", "..###..", ".#...#.", "#.....#", "#.....#", "#.....#", "#.....#", "#.....#",
     "#.....#", ".#...#.", "..###..", "......."),
    (".......", "...#...", "..##...", ".#.#...", "...#...", "...#...", "...#...", "...#...",
     "...#...", "...#...", ".#####.", "......."),
    (".......", "..###..", ".#...#.", "#.....#", "......#", ".....#.", "....#..", "...#...",
     "..#....", ".#.....", "#######", "......."),
    (".......", ".#####.", "#.....#", "......#", "......#", "..####.", "......#", "......#",
     "......#", "#.....#", ".#####.", "......."),
    (".......", "....##.", "...#.#.", "..#..#.", ".#...#.", "#....#.", "#######", ".....#.",
     ".....#.", ".....#.", ".....#.", "......."),
    (".......", "#######", "#......", "#......", "######.", "......#", "......#", "......#",
     "......#", "#.....#", ".#####.", "......."),
    (".......", "..####.", ".#.....", "#......", "#......", "######.", "#.....#", "#.....#",
     "#.....#", "#.....#", ".#####.", "......."),
    (".......", "#######", "......#", ".....#.", "....#..", "...#...", "...#...", "..#....",
     "..#....", "..#....", "..#....", "......."),
    (".......", ".#####.", "#.....#", "#.....#", "#.....#", ".#####.", "#.....#", "#.....#",
     "#.....#", "#.....#", ".#####.", "......."),
    (".......", ".#####.", "#.....#", "#.....#", "#.....#", "#.....#", ".######", "......#",
     "......#", ".....#.", ".####..", "......."),
)


def input_1998(digits: torch.Tensor) -> torch.Tensor:
    """MNIST's 28x28 uint8 digits as the paper's input (notebook 08, "The input"): padded to 32x32,
    background -0.1 and ink 1.175 (II.B), grey levels in between on a straight line."""
    x = digits.float().unsqueeze(1) / 255 * (INK_1998 - BACKGROUND_1998) + BACKGROUND_1998
    return F.pad(x, (2, 2, 2, 2), value=BACKGROUND_1998)


def mnist_1998(data_dir: str | Path | None = None, validation: bool = False
               ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{"train", "test"} in the paper's input form (notebook 08, "The input"); train is all
    60,000 images, as in the paper. validation=True: train is split_validation's 55,000 and
    "val" its 5,000, for choices (the test set is then still there, to be read once)."""
    data = {}
    train = load_mnist(data_dir, train=True, transform=None)
    x, y = train.data, train.targets
    if validation:
        (x, y), data["val"] = split_validation(x, y)
    data["train"] = (x, y)
    test = load_mnist(data_dir, train=False, transform=None)
    data["test"] = (test.data, test.targets)
    return {split: (input_1998(x), y.clone()) for split, (x, y) in data.items()}


def squash(a: torch.Tensor) -> torch.Tensor:
    """The paper's squashing function f(a) = A tanh(S a), A = 1.7159, S = 2/3 (II.B, Appendix A):
    f(1) = 1 and f(-1) = -1, where its second derivative is largest (notebook 08, "Squashing")."""
    return SQUASH_A * torch.tanh(SQUASH_S * a)


def squash_slope(a: torch.Tensor) -> torch.Tensor:
    """f'(a) = A S (1 - tanh(S a)^2), the slope second derivatives go back through (notebook 08,
    "Squashing")."""
    return SQUASH_A * SQUASH_S * (1 - torch.tanh(SQUASH_S * a) ** 2)


class Layer1998(nn.Module):
    """A layer of weighted sums, a = weights . inputs + bias, before the squashing (notebook 08,
    "The layers").

    Each layer has exactly two parameters, `weight` and `bias`, and computes its sums in
    `sums(x, weight, bias)` with the tensors it is given: forward passes its own; the second
    derivatives pass the squared weights (gauss_newton_diagonal). `fan_in` is each weight's F_i
    for the initialisation, `connections(out)` the layer's connections for an output of that shape.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sums(x, self.weight, self.bias)

    def reset_parameters(self) -> None:
        """Uniform in +-2.4/F_i, F_i the fan-in of the unit the weight feeds (II.B; notebook 08,
        "The layers")."""
        with torch.no_grad():
            for p, fan_in in ((self.weight, self.fan_in), (self.bias, self.fan_in_bias)):
                bound = torch.as_tensor(2.4 / fan_in).to(p.device)
                p.copy_((torch.rand_like(p) * 2 - 1) * bound)


class Conv1998(Layer1998):
    """C1 and C5: a plain convolution, every output map over every input map (notebook 08,
    "C1, C5 and F6: convolutions")."""

    def __init__(self, maps_in: int, maps_out: int, kernel: int = 5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(maps_out, maps_in, kernel, kernel))
        self.bias = nn.Parameter(torch.empty(maps_out))
        self.fan_in = torch.full_like(self.weight, maps_in * kernel * kernel)
        self.fan_in_bias = maps_in * kernel * kernel
        self.reset_parameters()

    def sums(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, weight, bias)

    def connections(self, out: torch.Size) -> int:
        return out[-2] * out[-1] * (self.weight.numel() + self.bias.numel())


class C3Conv1998(Layer1998):
    """C3: 16 maps of 5x5 kernels, each over the S2 maps Table I gives it (notebook 08, "C3: Table I").

    Only the 60 connected (map, map) pairs have weights: `weight` holds their 60 kernels, 1,500
    numbers, which `kernels` puts into a 16x6x5x5 convolution with zeros for the pairs not connected.
    """

    def __init__(self, table: tuple[str, ...] = C3_TABLE_1998, kernel: int = 5) -> None:
        super().__init__()
        seen = torch.tensor([[c == "X" for c in row] for row in table])  # (6 S2 maps, 16 C3 maps)
        self.register_buffer("table", seen)
        self.maps_in, self.maps_out, self.kernel = seen.shape[0], seen.shape[1], kernel
        pairs = seen.t().reshape(-1).nonzero().squeeze(1)  # (out map * 6 + in map) of each pair
        self.register_buffer("pairs", pairs)
        self.weight = nn.Parameter(torch.empty(len(pairs), kernel * kernel))
        self.bias = nn.Parameter(torch.empty(self.maps_out))
        inputs_per_map = seen.sum(0) * kernel * kernel  # F_i of each C3 map: 75, 100 or 150
        self.fan_in = inputs_per_map[pairs // self.maps_in].float().unsqueeze(1).expand_as(self.weight)
        self.fan_in_bias = inputs_per_map.float()
        self.reset_parameters()

    def kernels(self, weight: torch.Tensor) -> torch.Tensor:
        """The 60 kernels in a full (16, 6, 5, 5) convolution weight, zeros where not connected."""
        full = weight.new_zeros(self.maps_out * self.maps_in, self.kernel * self.kernel)
        full = full.index_copy(0, self.pairs, weight)
        return full.view(self.maps_out, self.maps_in, self.kernel, self.kernel)

    def sums(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernels(weight), bias)

    def connections(self, out: torch.Size) -> int:
        return out[-2] * out[-1] * (self.weight.numel() + self.bias.numel())


class Subsampling1998(Layer1998):
    """S2 and S4: each unit adds its 2x2 inputs, times a trainable coefficient, plus a trainable
    bias, one pair per map (II.B; notebook 08, "S2 and S4: subsampling"): 2 parameters per map."""

    def __init__(self, maps: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(maps))
        self.bias = nn.Parameter(torch.empty(maps))
        self.fan_in = torch.full_like(self.weight, 4.0)
        self.fan_in_bias = 4
        self.reset_parameters()

    def sums(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        added = F.avg_pool2d(x, 2) * 4  # the sum of each 2x2 block
        return added * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)

    def connections(self, out: torch.Size) -> int:
        return out[-2] * out[-1] * self.weight.numel() * (4 + 1)


class Full1998(Layer1998):
    """F6: 84 units, each over all 120 of C5's outputs (notebook 08, "C1, C5 and F6: convolutions")."""

    def __init__(self, n_in: int = 120, n_out: int = 84) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_out, n_in))
        self.bias = nn.Parameter(torch.empty(n_out))
        self.fan_in = torch.full_like(self.weight, n_in)
        self.fan_in_bias = n_in
        self.reset_parameters()

    def sums(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return F.linear(x.flatten(1), weight, bias)

    def connections(self, out: torch.Size) -> int:
        return self.weight.numel() + self.bias.numel()


def rbf_bitmaps_1998() -> torch.Tensor:
    """The ten output units' fixed parameter vectors (10, 84): each digit's 7x12 bitmap, +1 for
    "#" and -1 for "." (II.B; notebook 08, "The output: ten fixed bitmaps")."""
    return torch.tensor([[1.0 if c == "#" else -1.0 for row in digit for c in row]
                         for digit in RBF_DIGITS_1998])


class RBF1998(nn.Module):
    """The output layer: y_i = sum_j (x_j - w_ij)^2, the squared distance from F6's 84 outputs to
    digit i's bitmap (II.B). The bitmaps are a buffer: fixed, not learned. The smallest y wins
    (notebook 08, "The output: ten fixed bitmaps")."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("centres", rbf_bitmaps_1998())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cdist(x, self.centres) ** 2

    def connections(self, out: torch.Size) -> int:
        return self.centres.numel()


class LeNet5_1998(nn.Module):
    """LeNet-5 as LeCun et al. built it in 1998 (II.B; notebook 08, "The whole network, counted"):
    C1, S2, C3, S4, C5, F6, each
    followed by the scaled tanh, then the ten RBF units. 60,000 trainable parameters.

    forward gives the ten distances y (N, 10), smallest = the digit read; `layers` the six trainable
    layers in order, by the paper's names.
    """

    NAMES = ("C1", "S2", "C3", "S4", "C5", "F6")

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([Conv1998(1, 6), Subsampling1998(6), C3Conv1998(),
                                     Subsampling1998(16), Conv1998(16, 120), Full1998(120, 84)])
        self.rbf = RBF1998()

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """F6's 84 outputs and each layer's weighted sums a (before the squashing)."""
        sums = []
        for layer in self.layers:
            sums.append(layer(x))
            x = squash(sums[-1])
        return x, sums

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = squash(layer(x))
        return self.rbf(x)


def layer_counts_1998(model: LeNet5_1998) -> list[dict]:
    """Each layer's trainable parameters and connections, beside the paper's (II.B; notebook 08,
    "The whole network, counted")."""
    rows, x = [], torch.zeros(1, 1, 32, 32)
    with torch.no_grad():
        for name, layer in zip(model.NAMES, model.layers, strict=True):
            x = layer(x)
            params = sum(p.numel() for p in layer.parameters())
            rows.append({"layer": name, "parameters": params, "connections": layer.connections(x.shape),
                         "paper_parameters": PAPER_1998_LAYERS[name][0],
                         "paper_connections": PAPER_1998_LAYERS[name][1]})
            x = squash(x)
    rows.append({"layer": "output", "parameters": 0, "connections": model.rbf.connections(x.shape),
                 "paper_parameters": 0, "paper_connections": None})
    return rows


def map_loss(y: torch.Tensor, labels: torch.Tensor, j: float = MAP_J) -> torch.Tensor:
    """The MAP criterion (II.B, eq. 9): mean over samples of y_correct + log(e^-j + sum_i e^-y_i).

    The first term pulls F6's output to the right bitmap; the second pushes the other classes'
    distances up, but no longer once they are well past j (notebook 08, "The loss").
    """
    rubbish = torch.full_like(y[:, :1], -j)
    return (y.gather(1, labels[:, None]).squeeze(1) + torch.logsumexp(torch.cat([rubbish, -y], 1), 1)).mean()


def map_curvature(x: torch.Tensor, centres: torch.Tensor, labels: torch.Tensor,
                  j: float = MAP_J) -> torch.Tensor:
    """Gauss-Newton second derivative of the MAP loss with respect to F6's outputs x_k (N, 84):
    2 + sum_i p_i (1 - p_i) (2 (x_k - w_ik))^2, with p_i = e^-y_i / (e^-j + sum e^-y).

    See notebook 08, "Second derivatives at the output": y_correct is a sum of squares, whose
    second derivative is 2 per unit; the log term's second derivative with respect to y_i is
    p_i (1 - p_i) (its diagonal), brought to x_k by the squared derivative of y_i. The terms that
    multiply a first derivative by y_i's own second derivative (-2 p_i, never positive) are dropped.
    """
    diff = x[:, None, :] - centres[None]                    # (N, 10, 84)
    y = (diff ** 2).sum(-1)
    rubbish = torch.full_like(y[:, :1], -j)
    p = torch.softmax(torch.cat([rubbish, -y], 1), 1)[:, 1:]  # (N, 10)
    return 2 + (p * (1 - p))[:, :, None].mul(4 * diff ** 2).sum(1)


def gauss_newton_diagonal(model: LeNet5_1998, images: torch.Tensor, labels: torch.Tensor,
                          j: float = MAP_J) -> list[torch.Tensor]:
    """h_kk for every parameter (same order as model.parameters()), averaged over the images:
    the paper's diagonal Gauss-Newton estimate of d2E/dw_k^2 (Appendix C; notebook 08, "The squared
    network").

    Second derivatives go backward like gradients, but with squared weights and squared slopes:
    d2E/da_i^2 = f'(a_i)^2 sum_l w_li^2 d2E/da_l^2 (l: the units x_i feeds), and h_kk = sum over
    the connections that share weight k of x_j^2 d2E/da_i^2. That is the gradient of a "squared"
    copy of the network: each layer's sums with squared weights (tensors of their own that autograd
    takes the gradient with respect to) over squared inputs, whose gradient
    is carried back through f'(a)^2. Autograd computes it: the value fed forward is x^2 (what
    h_kk multiplies), the derivative passed back f'(a)^2 (what the recursion multiplies). The loop's
    last line does both: a_sq - a_sq.detach() is 0 in value, but autograd follows it back to a_sq,
    so s has the value x^2 while autograd carries gradients through it as if it were f'(a)^2 * a_sq.
    """
    with torch.no_grad():
        out, sums = model.features(images)
        top = map_curvature(out, model.rbf.centres, labels, j) / len(images)  # d2E/dx^2 at F6
    leaves = [(p.detach() ** 2).requires_grad_() if name.endswith("weight")
              else torch.zeros_like(p, requires_grad=True)  # a bias's input is 1, 1^2 = 1
              for name, p in model.named_parameters()]
    s = images ** 2
    for layer, a, u, c in zip(model.layers, sums, leaves[0::2], leaves[1::2], strict=True):
        a_sq = layer.sums(s, u, c)
        x = squash(a)
        s = x ** 2 + squash_slope(a) ** 2 * (a_sq - a_sq.detach())  # value x^2, slope f'(a)^2
    return list(torch.autograd.grad((top * s).sum(), leaves))


def eta_1998(pass_number: int, schedule: tuple = ETA_1998) -> float:
    """The paper's global learning rate for a pass (1, 2, ...): 0.0005 for 2 passes, then 0.0002
    for 3, 0.0001 for 3, 0.00005 for 4, 0.00001 after (III.B; notebook 08, "The schedule")."""
    done = 0
    for passes, eta in schedule:
        if passes is None or pass_number <= done + passes:
            return eta
        done += passes
    return schedule[-1][1]


def sdlm_steps(hessian: list[torch.Tensor], eta: float, mu: float = PAPER_1998["mu"]
               ) -> list[torch.Tensor]:
    """Each parameter's own step size, eta / (mu + h_kk) (III.B, Appendix C; notebook 08,
    "Stochastic diagonal Levenberg-Marquardt"): a
    large step where the loss curves gently, a small one where it curves sharply; mu keeps it
    finite where h_kk is near 0."""
    return [eta / (mu + h) for h in hessian]


def sdlm_update(params: list[torch.Tensor], grads: list[torch.Tensor], steps: list[torch.Tensor]) -> None:
    """w_k <- w_k - step_k * dE/dw_k for every parameter, in place (notebook 08, "Stochastic diagonal
    Levenberg-Marquardt")."""
    with torch.no_grad():
        for p, g, s in zip(params, grads, steps, strict=True):
            p.sub_(g * s)


@torch.no_grad()
def error_rate_1998(model: LeNet5_1998, images: torch.Tensor, labels: torch.Tensor,
                    batch_size: int = 250) -> float:
    """The fraction of images whose smallest RBF distance is not their digit's (notebook 08,
    "Training it here (quick mode)")."""
    wrong = sum((model(images[i:i + batch_size]).argmin(1) != labels[i:i + batch_size]).sum().item()
                for i in range(0, len(images), batch_size))
    return wrong / len(images)


def distort_1998(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """random_distort for the 1998 input (notebook 08, "With distortions"): the same random shift, turn
    and scaling of each image. Pixels from outside must be the 1998 background (-0.1), not the series'
    BACKGROUND, so the values are moved onto the series' background first and back after; the map
    is linear in the values, so nothing else changes."""
    shift = BACKGROUND - BACKGROUND_1998
    return random_distort(x + shift, generator=generator) - shift


def train_pass_1998(model: LeNet5_1998, images: torch.Tensor, labels: torch.Tensor, eta: float,
                    batch_size: int, generator: torch.Generator, mu: float = MU_1998,
                    j: float = MAP_J, hessian_samples: int = PAPER_1998["hessian_samples"],
                    distort: bool = False) -> float:
    """One pass of stochastic diagonal Levenberg-Marquardt (III.B, Appendix C; notebook 08, "One pass").

    First h_kk is estimated on `hessian_samples` random training images; then the images go in a
    random order, `batch_size` per update, each update w -= eta_b / (mu + h_kk) * dE/dw with the
    batch's mean gradient. The paper's eta is per image: a batch of B images stands for B
    updates of one image each, so eta_b = B * eta. distort=True: each batch is distorted anew by
    distort_1998 before the update (the estimate of h_kk uses the images as they are). Returns the
    pass's mean loss.
    """
    params = list(model.parameters())
    pick = torch.randperm(len(images), generator=generator)[:hessian_samples]
    steps = sdlm_steps(gauss_newton_diagonal(model, images[pick], labels[pick], j), eta * batch_size, mu)
    order = torch.randperm(len(images), generator=generator)
    total = 0.0
    for start in range(0, len(images), batch_size):
        idx = order[start:start + batch_size]
        batch = images[idx]
        if distort:  # the generator is on the CPU: distort there, then back to the images' device
            batch = distort_1998(batch.cpu(), generator).to(batch.device)
        loss = map_loss(model(batch), labels[idx], j)
        sdlm_update(params, torch.autograd.grad(loss, params), steps)
        total += loss.item() * len(idx)
    return total / len(images)


def fit_1998(model: LeNet5_1998, data: dict, passes: int = PAPER_1998["passes"],
             batch_size: int = BATCH_1998, seed: int = 0, mu: float = MU_1998, j: float = MAP_J,
             score: tuple[str, ...] = ("train", "test"), distort: bool = False,
             on_pass: Callable[[dict], Any] | None = None) -> list[dict]:
    """Train the 1998 network the paper's way for `passes` passes over data["train"] (notebook 08,
    "Training it here (quick mode)";
    benchmarks/lenet1998.py calls it for the full reproduction). The weights are set from `seed`
    first. After each pass the error rate on each split in `score` is measured; returns one row per
    pass: pass, eta, loss, seconds (the pass's training time), <split>_error. distort=True trains on
    distorted images (train_pass_1998)."""
    seed_everything(seed)
    for layer in model.layers:
        layer.reset_parameters()
    generator = torch.Generator().manual_seed(seed)
    history = []
    for n in range(1, passes + 1):
        start = time.perf_counter()
        eta = eta_1998(n)
        loss = train_pass_1998(model, *data["train"], eta, batch_size, generator, mu=mu, j=j, distort=distort)
        row = {"pass": n, "eta": eta, "loss": loss, "seconds": time.perf_counter() - start}
        row.update({f"{split}_error": error_rate_1998(model, *data[split]) for split in score})
        history.append(row)
        if on_pass is not None:
            on_pass(row)
    return history
