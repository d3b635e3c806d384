"""LeNet-5 of 1998 (notebook 08, lh.LeNet5_1998 and its training): the network against the paper's
figures, the MAP loss and the Gauss-Newton diagonal against computations by hand, and the figures
notebook 08 quotes against benchmarks/results/lenet1998*.csv."""

from __future__ import annotations

import csv
import math
import re
import statistics
from pathlib import Path

import nbformat
import pytest
import torch
from conftest import printed

import lenet5_helpers as lh

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "08-lenet5-1998.ipynb"
RESULTS = ROOT / "benchmarks" / "results"


def test_each_layer_has_the_papers_parameters_and_connections():
    rows = lh.layer_counts_1998(lh.LeNet5_1998())
    for row in rows[:-1]:
        assert (row["parameters"], row["connections"]) == lh.PAPER_1998_LAYERS[row["layer"]], row
    assert sum(r["parameters"] for r in rows) == 60_000
    assert sum(p.numel() for p in lh.LeNet5_1998().parameters()) == 60_000
    assert rows[-1] == {"layer": "output", "parameters": 0, "connections": 840,
                        "paper_parameters": 0, "paper_connections": None}
    assert sum(r["connections"] for r in rows) == 340_908


def test_c3_table_is_table_one():
    """Table I's rule: maps 0-5 see 3 neighbouring S2 maps, 6-11 four, 12-14 four not all
    neighbouring, 15 all six."""
    table = torch.tensor([[c == "X" for c in row] for row in lh.C3_TABLE_1998])
    expected = torch.zeros(6, 16, dtype=torch.bool)
    for j in range(6):
        expected[[(j + d) % 6 for d in (0, 1, 2)], j] = True
        expected[[(j + d) % 6 for d in (0, 1, 2, 3)], 6 + j] = True
    for j in range(3):
        expected[[(j + d) % 6 for d in (0, 1, 3, 4)], 12 + j] = True
    expected[:, 15] = True
    assert torch.equal(table, expected)
    c3 = lh.C3Conv1998()
    kernels = c3.kernels(torch.ones_like(c3.weight))
    assert torch.equal(kernels.sum((2, 3)) > 0, expected.t())


def test_c3_with_all_ones_table_is_a_plain_convolution():
    c3 = lh.C3Conv1998(table=("X" * 16,) * 6)
    x = torch.randn(2, 6, 14, 14)
    full = c3.kernels(c3.weight)
    assert torch.allclose(c3(x), torch.nn.functional.conv2d(x, full, c3.bias), atol=1e-6)
    assert torch.equal(full.reshape(96, 25), c3.weight)


def test_rbf_bitmaps_are_plus_minus_one_10_by_84_and_all_different():
    bitmaps = lh.rbf_bitmaps_1998()
    assert bitmaps.shape == (10, 84)
    assert set(bitmaps.unique().tolist()) == {-1.0, 1.0}
    assert all(len(d) == 12 and all(len(r) == 7 for r in d) for d in lh.RBF_DIGITS_1998)
    distances = torch.cdist(bitmaps, bitmaps) ** 2
    assert (distances + torch.eye(10) * 1e9).min() >= 4 * 6  # any two differ in 6 pixels or more
    model = lh.LeNet5_1998()
    assert not any(p is model.rbf.centres for p in model.parameters())  # fixed, not learned


def test_output_is_the_squared_distance_to_each_bitmap():
    rbf = lh.RBF1998()
    x = torch.randn(3, 84)
    by_hand = torch.tensor([[sum((x[n, k] - rbf.centres[i, k]) ** 2 for k in range(84)) for i in range(10)]
                            for n in range(3)])
    assert torch.allclose(rbf(x), by_hand, rtol=1e-4)


def test_input_is_padded_with_background_minus_0_1_and_ink_1_175():
    digits = torch.zeros(1, 28, 28, dtype=torch.uint8)
    digits[0, 10, 10] = 255
    x = lh.input_1998(digits)
    assert x.shape == (1, 1, 32, 32)
    assert x[0, 0, 12, 12].item() == pytest.approx(1.175)
    assert x[0, 0, 0, 0].item() == pytest.approx(-0.1) and x[0, 0, 5, 5].item() == pytest.approx(-0.1)


def test_squashing_is_1_7159_tanh_two_thirds_a_and_its_slope():
    a = torch.linspace(-3, 3, 13, dtype=torch.float64)
    assert torch.allclose(lh.squash(a), 1.7159 * torch.tanh(2 * a / 3))
    assert lh.squash(torch.tensor(1.0)).item() == pytest.approx(1.0, abs=1e-4)
    a.requires_grad_()
    (slope,) = torch.autograd.grad(lh.squash(a).sum(), a)
    assert torch.allclose(lh.squash_slope(a.detach()), slope)


def test_initialisation_is_within_2_4_over_the_fan_in():
    model = lh.LeNet5_1998()
    c1, s2, c3, _, c5, f6 = model.layers
    assert c1.weight.abs().max() <= 2.4 / 25 and c5.weight.abs().max() <= 2.4 / 400
    assert f6.weight.abs().max() <= 2.4 / 120 and s2.weight.abs().max() <= 2.4 / 4
    assert f6.weight.abs().max() > 0.9 * 2.4 / 120  # the whole range is used
    fan = c3.fan_in[:, 0].tolist()  # each C3 kernel: 25 x the S2 maps its C3 map sees
    assert sorted(set(fan)) == [75.0, 100.0, 150.0]
    assert (c3.weight.abs() <= 2.4 / c3.fan_in).all()


def test_map_loss_by_hand():
    y = torch.tensor([[3.0, 0.5, 7.0, 2.0, 9.0, 4.0, 6.0, 8.0, 1.5, 5.0],
                      [0.2, 4.0, 3.0, 2.5, 9.0, 4.0, 6.0, 8.0, 1.0, 5.0]])
    labels = torch.tensor([1, 0])
    j = 2.0
    by_hand = sum(y[n, labels[n]].item() + math.log(math.exp(-j) + sum(math.exp(-v) for v in y[n].tolist()))
                  for n in range(2)) / 2
    assert lh.map_loss(y, labels, j).item() == pytest.approx(by_hand, rel=1e-6)


def test_map_curvature_by_hand():
    """2 + sum_i p_i (1 - p_i) (2 (x_k - w_ik))^2, p_i = e^-y_i / (e^-j + sum e^-y)."""
    torch.manual_seed(0)
    centres = lh.rbf_bitmaps_1998().double()
    x = (centres[3] * 0.6 + torch.randn(84, dtype=torch.float64) * 0.3)[None]
    j = 20.0
    y = [((x[0] - centres[i]) ** 2).sum().item() for i in range(10)]
    z = math.exp(-j) + sum(math.exp(-v) for v in y)
    p = [math.exp(-v) / z for v in y]
    by_hand = [2 + sum(p[i] * (1 - p[i]) * (2 * (x[0, k].item() - centres[i, k].item())) ** 2
                       for i in range(10)) for k in range(84)]
    got = lh.map_curvature(x, centres, torch.tensor([3]), j)[0]
    assert torch.allclose(got, torch.tensor(by_hand, dtype=torch.float64), rtol=1e-9)


class Tiny1998(lh.LeNet5_1998):
    """A small net with every kind of layer: conv 3x3 (8x8 -> 2x6x6), subsampling (-> 2x3x3), a C3-like
    partial convolution 2x2 over a table (-> 3x2x2), a full layer to 84, the RBF output."""

    def __init__(self) -> None:
        torch.nn.Module.__init__(self)
        self.layers = torch.nn.ModuleList([lh.Conv1998(1, 2, 3), lh.Subsampling1998(2),
                                           lh.C3Conv1998(table=("XX.", ".XX"), kernel=2),
                                           lh.Full1998(12, 84)])
        self.rbf = lh.RBF1998()
        with torch.no_grad():  # weights big enough that every layer matters
            for p in self.parameters():
                p.uniform_(-0.8, 0.8)


def brute_force_diagonal(model: Tiny1998, images: torch.Tensor, labels: torch.Tensor, j: float) -> list:
    """The paper's diagonal estimate (Appendix C), unit by unit and connection by connection, in loops:
    d2E/da_i^2 = f'(a_i)^2 sum_l w_li^2 d2E/da_l^2; h_kk = sum over the connections of weight k of
    x_j^2 d2E/da_i^2; averaged over the images."""
    c1, s2, c3, f6 = model.layers
    sl = lh.squash_slope
    h = [torch.zeros_like(p, dtype=torch.float64) for p in model.parameters()]
    for n in range(len(images)):
        x0 = images[n, 0].double()
        a1 = c1(images[n:n + 1])[0].double()
        x1 = lh.squash(a1)
        a2 = s2(x1[None].float())[0].double()
        x2 = lh.squash(a2)
        a3 = c3(x2[None].float())[0].double()
        x3 = lh.squash(a3)
        a4 = f6(x3[None].float())[0].double()
        x4 = lh.squash(a4)
        g4 = sl(a4) ** 2 * lh.map_curvature(x4[None], model.rbf.centres.double(), labels[n:n + 1], j)[0]
        w4, flat3 = f6.weight.double(), x3.reshape(-1)
        for k in range(84):
            for i in range(12):
                h[6][k, i] += flat3[i] ** 2 * g4[k]
            h[7][k] += g4[k]
        gx3 = torch.zeros(12, dtype=torch.float64)
        for i in range(12):
            gx3[i] = sum(w4[k, i] ** 2 * g4[k] for k in range(84))
        g3 = sl(a3) ** 2 * gx3.view(3, 2, 2)
        kern = c3.kernels(c3.weight).double()
        pair_of = {int(p): row for row, p in enumerate(c3.pairs)}
        gx2 = torch.zeros(2, 3, 3, dtype=torch.float64)
        for o in range(3):
            for p in range(2):
                for q in range(2):
                    h[5][o] += g3[o, p, q]
                    for i in range(2):
                        if o * 2 + i not in pair_of:
                            continue
                        for u in range(2):
                            for v in range(2):
                                h[4][pair_of[o * 2 + i], u * 2 + v] += x2[i, p + u, q + v] ** 2 * g3[o, p, q]
                                gx2[i, p + u, q + v] += kern[o, i, u, v] ** 2 * g3[o, p, q]
        g2 = sl(a2) ** 2 * gx2
        gx1 = torch.zeros(2, 6, 6, dtype=torch.float64)
        for c in range(2):
            coef = s2.weight[c].double()
            for p in range(3):
                for q in range(3):
                    h[3][c] += g2[c, p, q]
                    for u in range(2):
                        for v in range(2):
                            h[2][c] += x1[c, 2 * p + u, 2 * q + v] ** 2 * g2[c, p, q]
                            gx1[c, 2 * p + u, 2 * q + v] = coef ** 2 * g2[c, p, q]
        g1 = sl(a1) ** 2 * gx1
        for c in range(2):
            for p in range(6):
                for q in range(6):
                    h[1][c] += g1[c, p, q]
                    for u in range(3):
                        for v in range(3):
                            h[0][c, 0, u, v] += x0[p + u, q + v] ** 2 * g1[c, p, q]
    return [t / len(images) for t in h]


def test_gauss_newton_diagonal_against_brute_force_on_a_tiny_net():
    torch.manual_seed(1)
    model = Tiny1998()
    images, labels = torch.randn(3, 1, 8, 8), torch.tensor([4, 0, 7])
    fast = lh.gauss_newton_diagonal(model, images, labels, j=30.0)
    slow = brute_force_diagonal(model, images, labels, j=30.0)
    assert len(fast) == len(slow) == 8
    for name, f, s in zip([n for n, _ in model.named_parameters()], fast, slow, strict=True):
        assert f.shape == s.shape, name
        assert torch.allclose(f.double(), s, rtol=1e-4, atol=1e-9), (name, f, s)
        assert (f >= 0).all(), name


def test_08s_line_of_the_squared_network_is_the_helpers():
    """08 section 6 shows the one line that passes x^2 forward and f'(a)^2 back: it must be the helper's."""
    import inspect

    shown = re.search(r"```python\n(s = .*)\n```", notebook_text())
    assert shown and f"        {shown[1]}  #" in inspect.getsource(lh.gauss_newton_diagonal)


def test_gauss_newton_diagonal_is_the_exact_hessian_diagonal_where_no_weight_is_shared():
    """One full layer, linear units, squared error to one bitmap (a large j: the MAP loss's second
    term is constant): d2E/dw^2 = x^2 d2E/da^2 exactly, as the estimate says."""
    torch.manual_seed(2)
    f6 = lh.Full1998(5, 84)
    x = torch.randn(1, 5, dtype=torch.float64)
    centre = lh.rbf_bitmaps_1998().double()[2]

    def loss(w):
        return ((torch.nn.functional.linear(x, w) - centre) ** 2).sum()

    hess = torch.autograd.functional.hessian(loss, f6.weight.detach().double())
    exact = torch.stack([hess[k, i, k, i] for k in range(84) for i in range(5)]).view(84, 5)
    assert torch.allclose(exact, 2 * x[0] ** 2 * torch.ones(84, 1, dtype=torch.float64))


def test_sdlm_step_is_eta_over_mu_plus_h_and_updates_in_place():
    h = [torch.tensor([0.0, 0.5, 4.0])]
    (steps,) = lh.sdlm_steps(h, eta=0.001, mu=0.02)
    assert torch.allclose(steps, 0.001 / (0.02 + torch.tensor([0.0, 0.5, 4.0])))
    w = torch.tensor([1.0, 1.0, 1.0])
    lh.sdlm_update([w], [torch.tensor([1.0, -2.0, 3.0])], [steps])
    assert torch.allclose(w, 1 - steps * torch.tensor([1.0, -2.0, 3.0]))


def test_eta_schedule_is_the_papers():
    assert [lh.eta_1998(n) for n in range(1, 21)] == [5e-4] * 2 + [2e-4] * 3 + [1e-4] * 3 + [5e-5] * 4 + \
        [1e-5] * 8


def test_fit_runs_the_schedule_and_the_same_seed_gives_the_same_weights():
    """Two passes over 64 random images, twice with the same seed: a row per pass with the paper's
    eta, a finite loss, and the same weights both times (fit_1998 sets them from the seed)."""
    torch.manual_seed(0)
    digits = (torch.rand(64, 28, 28) * 255).to(torch.uint8)
    data = {"train": (lh.input_1998(digits), torch.randint(0, 10, (64,)))}
    runs = []
    for _ in range(2):
        model = lh.LeNet5_1998()
        history = lh.fit_1998(model, data, passes=2, batch_size=16, seed=3, score=("train",))
        runs.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert [row["pass"] for row in history] == [1, 2] and [row["eta"] for row in history] == [5e-4, 5e-4]
    assert all(math.isfinite(row["loss"]) and 0 <= row["train_error"] <= 1 for row in history)
    assert torch.equal(runs[0], runs[1])



def test_distort_1998_keeps_the_1998_background_and_moves_the_ink_as_random_distort_does():
    """An empty 1998 image stays -0.1 everywhere (pixels from outside are background, not the series'
    BACKGROUND); a digit moves exactly as random_distort moves the same digit on the series' scale."""
    blank = lh.input_1998(torch.zeros(2, 28, 28, dtype=torch.uint8))
    assert torch.allclose(lh.distort_1998(blank, torch.Generator().manual_seed(0)), blank, atol=1e-6)
    digits = (torch.rand(3, 28, 28, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)
    x = lh.input_1998(digits)
    moved = lh.distort_1998(x, torch.Generator().manual_seed(2))
    # the same padded digits on the series' scale (0 -> -1, 255 -> 1), distorted by random_distort with
    # the same random numbers, then put on the 1998 scale: the same images
    padded = torch.nn.functional.pad(digits.float().unsqueeze(1) / 255, (2, 2, 2, 2))
    series = lh.random_distort(padded * 2 - 1, generator=torch.Generator().manual_seed(2))
    assert lh.BACKGROUND == -1.0
    back = (series + 1) / 2 * (lh.INK_1998 - lh.BACKGROUND_1998) + lh.BACKGROUND_1998
    assert torch.allclose(moved, back, atol=1e-5)
    assert (moved - x).abs().max() > 0.5  # it did move


def test_fit_with_distort_trains_on_other_images_from_the_same_start():
    """distort=True changes the images each update sees, so the weights after one pass differ from
    distort=False's from the same seed; the loss stays finite."""
    torch.manual_seed(0)
    digits = (torch.rand(64, 28, 28) * 255).to(torch.uint8)
    data = {"train": (lh.input_1998(digits), torch.randint(0, 10, (64,)))}
    weights = {}
    for distort in (False, True):
        model = lh.LeNet5_1998()
        history = lh.fit_1998(model, data, passes=1, batch_size=16, seed=3, score=("train",), distort=distort)
        assert math.isfinite(history[0]["loss"])
        weights[distort] = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert not torch.allclose(weights[False], weights[True])


def csv_rows(name: str) -> list[dict]:
    with open(RESULTS / name, newline="") as f:
        return list(csv.DictReader(f))


def notebook_text() -> str:
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def notebook_outputs() -> str:
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    return printed([c for c in nb.cells if c.cell_type == "code"])


def test_the_swap_ladders_first_rung_is_the_1998_network_and_its_map_loss():
    """benchmarks/lenet1998.py --swaps trains the 1998 output through lh.train_epoch's cross-entropy:
    the scores [-y, -j] must give exactly the MAP loss, and read the digit with the smallest y."""
    import lenet1998  # benchmarks/ is on sys.path (conftest)

    torch.manual_seed(0)
    swapped = lenet1998.Swapped1998()
    paper = lh.LeNet5_1998()
    paper.layers.load_state_dict(swapped.layers.state_dict())
    x, labels = torch.randn(6, 1, 32, 32), torch.tensor([0, 3, 5, 7, 8, 9])
    scores, y = swapped(x), paper(x)
    assert scores.shape == (6, 11) and torch.allclose(scores[:, :10], -y, atol=1e-4)
    loss = torch.nn.functional.cross_entropy(scores, labels)
    assert torch.allclose(loss, lh.map_loss(y, labels), rtol=1e-5)
    assert torch.equal(scores[:, :10].argmax(1), y.argmin(1))
    today = lenet1998.Swapped1998(output="linear", squash="relu", pool="max")
    assert today(x).shape == (6, 10)
    assert not any(isinstance(m, lh.Subsampling1998) for m in today.modules())
    # the last rung's network: no trainable subsampling ((6 + 16) maps x 2 = 44 parameters fewer)
    assert sum(p.numel() for p in lenet1998.Swapped1998(output="linear").parameters()) - \
        sum(p.numel() for p in today.parameters()) == 44
    # the same seed gives every rung with the trainable subsampling the 1998 network's first weights
    # (notebook 08, section 12, shows seed 0's as the benchmark's)
    for pieces in ({}, {"output": "linear"}, {"output": "linear", "squash": "relu"}):
        torch.manual_seed(1)
        rung = lenet1998.Swapped1998(**pieces)
        torch.manual_seed(1)
        first = lh.LeNet5_1998()
        for a, b in zip(rung.layers.parameters(), first.layers.parameters(), strict=True):
            assert torch.equal(a, b), pieces


@pytest.mark.skipif(not (RESULTS / "lenet1998.csv").exists(), reason="no benchmark CSV yet")
def test_notebooks_printed_reproduction_is_what_the_csv_holds():
    """Notebook 08 prints the mean, min and max test error over the seeds and the seed count from the
    CSV, and its stored output holds what the CSV holds (rounded to 2 decimals in %); its text does not
    write them out, so a seed added to the CSV changes only the output."""
    rows = [r for r in csv_rows("lenet1998.csv") if r["eval_set"] == "test"]
    errors = [100 * float(r["eval_error"]) for r in rows]
    printed = notebook_outputs()
    line = re.search(r"^test error +[\d.]+% +([\d.]+)% +([\d.]+)% +([\d.]+)%$", printed, re.M)
    assert line, "notebook 08 should print the test error: the paper's, then mean, min and max"
    for said, value in zip(line.groups(), (sum(errors) / len(errors), min(errors), max(errors)), strict=True):
        assert float(said) == pytest.approx(value, abs=0.006), (said, value)
    seeds = re.search(r"^seeds +(\d+)$", printed, re.M)
    assert seeds and int(seeds[1]) == len(rows)
    text = notebook_text()
    assert not re.search(r"over \d+ seeds: mean", text, re.I), "08's text should refer to the printed figures"
    batch = re.search(r"(\d+) images per update", text)
    assert batch and {int(r["batch_size"]) for r in rows} == {int(batch[1])}


def test_notebook_marks_the_papers_figures_as_the_papers():
    """Every figure of the paper that notebook 08 quotes (0.95 %, 0.35 %, 0.8 %, mu 0.02, ...) is
    said to be the paper's, with its section, where the text first quotes it."""
    text = notebook_text()
    for figure in ("0.95 %", "0.35 %", "0.8 %", "0.02"):
        first = text.find(figure)
        assert first >= 0, figure
        near = text[max(0, first - 300):first + 300]
        assert re.search(r"paper|LeCun", near) and re.search(r"\b(II\.B|III\.B|Appendix [A-C])\b", near), \
            (figure, near)


def ladder_from_csvs() -> dict[str, tuple[float, float, float, int, float | None]]:
    """Each rung's (mean, min, max, seeds) of the validation error in %, and its peak learning rate,
    from the benchmark's CSVs: the SDLM rung from lenet1998_val.csv (no learning rate), the others at
    the peak learning rate with the lowest mean (the first tried, on a tie)."""
    sdlm = [100 * float(r["eval_error"]) for r in csv_rows("lenet1998_val.csv")
            if r["eval_set"] == "val" and int(r["passes"]) == 20]
    ladder: dict[str, tuple[float | None, list[float]]] = {"1998: SDLM, 20 passes": (None, sdlm)}
    by_lr: dict[tuple[str, float], list[float]] = {}
    for r in csv_rows("lenet1998_swaps.csv"):
        if int(r["epochs"]) == lh.RECIPES["default"]["epochs"]:
            by_lr.setdefault((r["rung"], float(r["lr"])), []).append(100 * float(r["val_error"]))
    for (rung, lr), errors in by_lr.items():
        if rung not in ladder or sum(errors) / len(errors) < sum(ladder[rung][1]) / len(ladder[rung][1]):
            ladder[rung] = (lr, errors)
    return {rung: (sum(e) / len(e), min(e), max(e), len(e), lr) for rung, (lr, e) in ladder.items()}


def test_notebooks_swap_ladder_is_what_the_csvs_hold_and_its_text_reads_it():
    """Section 12's printed ladder against benchmarks/results/lenet1998_{val,swaps}.csv (each rung's
    best peak learning rate on validation), and the figures its text quotes against the printed ones."""
    expected = ladder_from_csvs()
    assert list(expected) == ["1998: SDLM, 20 passes", "SGD", "+ linear output, cross-entropy", "+ ReLU",
                              "+ max-pooling"]
    printed = notebook_outputs()
    for rung, want in expected.items():
        figures_re = r" +([\d.]+ +)?([\d.]+)% +([\d.]+)% +([\d.]+)% +(\d+)$"  # [lr] mean min max seeds
        line = re.search(rf"^{re.escape(rung)}{figures_re}", printed, re.M)
        assert line, f"notebook 08 should print the rung {rung!r}"
        lr, *line = line.groups()
        assert (lr is None) if want[4] is None else float(lr) == want[4], (rung, lr)
        assert [float(v) for v in line[:3]] == pytest.approx(want[:3], abs=0.006), rung
        assert int(line[3]) == want[3]
    text = notebook_text()
    spread = re.search(r"differ by up to\s+([\d.]+) points", text)
    widest = max(w[2] - w[1] for w in expected.values())  # the largest max - min of a rung's seeds
    assert spread and float(spread[1]) == pytest.approx(widest, abs=0.006)
    sgd = re.search(r"\*\*SDLM → SGD\*\*: the mean falls from ([\d.]+) % to ([\d.]+) %", text)
    assert sgd and [float(v) for v in sgd.groups()] == pytest.approx(
        [expected["1998: SDLM, 20 passes"][0], expected["SGD"][0]], abs=0.006)
    assert expected["SGD"][2] < expected["1998: SDLM, 20 passes"][1]  # "both SGD seeds below both SDLM"
    ce = re.search(r"\*\*RBF \+ MAP → linear \+ cross-entropy\*\*: ([\d.]+) % → ([\d.]+) %", text)
    rung2, rung3 = expected["SGD"], expected["+ linear output, cross-entropy"]
    assert ce and [float(v) for v in ce.groups()] == pytest.approx([rung2[0], rung3[0]], abs=0.006)
    assert abs(rung2[0] - rung3[0]) < max(rung2[2] - rung2[1], rung3[2] - rung3[1])  # "less than the spread"
    last = re.search(r"with ReLU kept: ([\d.]+) %.*?rung 3 \(([\d.]+) %\).*?those ([\d.]+) points",
                     text, re.S)
    assert last and [float(v) for v in last.groups()] == pytest.approx(
        [expected["+ max-pooling"][0], rung3[0], rung3[0] - expected["+ max-pooling"][0]], abs=0.006)
    assert expected["+ max-pooling"][2] < rung3[1]  # "both of its seeds are below both of rung 3's"
    relu = re.search(r"\*\*scaled tanh → ReLU\*\*.*?([\d.]+) %", text, re.S)
    assert relu and float(relu[1]) == pytest.approx(expected["+ ReLU"][0], abs=0.006)
    # the order the text reads: SDLM worst of the rungs that train, max-pooling best
    trained = {rung: want[0] for rung, want in expected.items() if want[0] < 50}
    assert max(trained, key=trained.get) == "1998: SDLM, 20 passes"
    assert min(trained, key=trained.get) == "+ max-pooling"
    assert "+ ReLU" not in trained
    dead = re.findall(r"^(S[24]): (\d+) of (\d+) coefficients below zero; (\d+) of \3 maps", printed, re.M)
    assert [d[0] for d in dead] == ["S2", "S4"] and all(0 < int(d[3]) <= int(d[1]) for d in dead)


@pytest.mark.slow
def test_the_relu_rungs_error_is_the_share_of_validation_digits_that_are_not_1s():
    """Section 12: 88.38 % is what a network that answers 1 for every digit gets wrong."""
    from conftest import real_mnist_ready

    if not real_mnist_ready():
        pytest.skip("real MNIST not prepared: run `make data` first")
    labels = lh.mnist_1998(validation=True)["val"][1]
    not_ones = 100 * (labels != 1).float().mean().item()
    assert ladder_from_csvs()["+ ReLU"][0] == pytest.approx(not_ones, abs=0.006)
    said = re.search(r"([\d.]+) %[^.]*?share of validation\s+digits that are not 1s", notebook_text())
    assert said and float(said[1]) == pytest.approx(not_ones, abs=0.006)
    printed = re.search(r"validation digits that are not 1s: ([\d.]+)%", notebook_outputs())
    assert printed and float(printed[1]) == pytest.approx(not_ones, abs=0.006)


def latest_batch_rows() -> dict[tuple[int, float], dict]:
    """Each (images per update, mu) setting's latest row of lenet1998_batch.csv at j = 10, as section 10
    reads it."""
    return {(int(r["batch_size"]), float(r["mu"])): r for r in csv_rows("lenet1998_batch.csv")
            if float(r["j"]) == 10}


def test_notebooks_words_on_the_batch_are_what_the_batch_csv_holds():
    """Section 7's seconds per pass of 10,000 images (one image and BATCH_1998 per update), section 7's
    cap on a step and section 10's gap after one pass, against lenet1998_batch.csv and the helper."""
    rows, text = latest_batch_rows(), " ".join(notebook_text().split())
    one, ours = rows[(1, lh.MU_1998)], rows[(lh.BATCH_1998, lh.MU_1998)]
    took = re.search(r"one pass over 10,000 images took (\d+) s with one image per update and (\d+) s with "
                     r"(\d+) per update", text)
    seconds = [round(float(one["seconds"])), round(float(ours["seconds"])), lh.BATCH_1998]
    assert took and [int(v) for v in took.groups()] == seconds
    hours = re.search(r"\((\d+) s × (\d+) × (\d+)\)", text)  # 20 passes over 60,000, one image per update
    assert hours
    assert [int(v) for v in hours.groups()] == [int(took[1]), 60_000 // 10_000, lh.PAPER_1998["passes"]]
    assert 40 <= math.prod(int(v) for v in hours.groups()) / 60 <= 50, "'about three quarters of an hour'"
    cap = re.search(r"at (\d+) × ([\d.]+) / ([\d.]+) = ([\d.]+) times its gradient per update, ([\d.]+) per "
                    r"image, a twenty-fifth of the paper's η/μ = (\d+\.\d+)", text)
    assert cap, "section 7's cap on a step"
    batch, eta, mu, step, per_image, paper = (float(v) for v in cap.groups())
    assert (batch, eta, mu) == (lh.BATCH_1998, lh.eta_1998(1), lh.MU_1998)
    assert step == pytest.approx(batch * eta / mu) and per_image == pytest.approx(eta / mu)
    assert paper == pytest.approx(eta / lh.PAPER_1998["mu"]) and paper / per_image == pytest.approx(25)
    apart = re.search(r"the two end ([\d.]+) points apart", text)
    gap = 100 * abs(float(one["val_error"]) - float(ours["val_error"]))
    assert apart and float(apart[1]) == pytest.approx(gap, abs=0.006)
    best = {}
    for (b, mu), r in rows.items():
        if b not in best or float(r["val_error"]) < float(rows[(b, best[b])]["val_error"]):
            best[b] = mu
    assert best[1] == best[lh.BATCH_1998] == lh.MU_1998  # "the best ... both with one image ... and with 8"


def mean_after_20(name: str, eval_set: str) -> float:
    """The mean error (%) after 20 passes over the seeds of one of benchmarks/lenet1998.py's CSVs."""
    errors = [100 * float(r["eval_error"]) for r in csv_rows(name)
              if r["eval_set"] == eval_set and int(r["passes"]) == 20]
    return sum(errors) / len(errors)


def test_notebooks_and_results_pages_20_pass_comparison_is_what_the_csvs_hold():
    """Section 10's words on 1, 8 and 32 images per update over 20 passes (all with j = 10), and the
    results page's, against the benchmark's CSVs (one file per setting)."""
    names = ("lenet1998_b1_val.csv", "lenet1998_val.csv", "lenet1998_b32_val.csv", "lenet1998_j10.csv",
             "lenet1998_b32.csv")
    assert {float(r["j"]) for name in names for r in csv_rows(name)} == {10.0}  # "Every run ... used j = 10"
    assert "Every run of this section but the last used j = 10" in " ".join(notebook_text().split())
    assert {float(r["j"]) for r in csv_rows("lenet1998_batch.csv")} == {10.0}  # the one-pass runs too
    b1, b8, b32 = (mean_after_20(name, "val") for name in names[:3])
    t8, t32 = mean_after_20("lenet1998_j10.csv", "test"), mean_after_20("lenet1998_b32.csv", "test")
    text = " ".join(notebook_text().split())
    same = re.search(r"one image per update, the paper's own setting, and 8 per update end with the same "
                     r"mean error, ([\d.]+) %.*?32 per update ends ([\d.]+) points higher.*?On the test set, "
                     r"8 per update ends ([\d.]+) points below 32 per update", text)
    assert same, "section 10's comparison over 20 passes"
    assert f"{b1:.2f}" == f"{b8:.2f}" == same[1]
    assert float(same[2]) == pytest.approx(b32 - b8, abs=0.006) and b32 > b8
    assert float(same[3]) == pytest.approx(t32 - t8, abs=0.006) and t32 > t8
    page = " ".join((ROOT / "website" / "results.md").read_text().split())
    said = re.search(r"32 images per update and μ = 2\.0 \(`benchmarks/results/lenet1998_b32\.csv`;.*?\) "
                     r"ended at ([\d.]+) % \(([\d.]+)–([\d.]+) %\) test error.*?both ended at a mean of "
                     r"([\d.]+) %, in (\d+) and (\d+) minutes per seed on one thread; 32 per update "
                     r"\(`lenet1998_b32_val\.csv`\) at ([\d.]+) %", page)
    assert said, "the results page's comparison of the batches"
    b32_test = [100 * float(r["eval_error"]) for r in csv_rows("lenet1998_b32.csv")
                if r["eval_set"] == "test"]
    assert [float(v) for v in said.groups()[:3]] == pytest.approx([t32, min(b32_test), max(b32_test)],
                                                                  abs=0.006)
    assert said[4] == f"{b8:.2f}" and float(said[7]) == pytest.approx(b32, abs=0.006)
    method = re.search(r"python benchmarks/lenet1998\.py --seeds \S+ --passes (\d+) --batch-size (\d+) "
                       r"--mu ([\d.]+) --j ([\d.]+)`.*?here (\d+) images per update, μ = ([\d.]+) and "
                       r"j = ([\d.]+),", page)
    assert method, "the results page's method line"
    settings = {(int(r["passes"]), int(r["batch_size"]), float(r["mu"]), float(r["j"]))
                for r in csv_rows("lenet1998.csv")}
    assert settings == {(int(method[1]), int(method[2]), float(method[3]), float(method[4]))} == {
        (lh.PAPER_1998["passes"], lh.BATCH_1998, lh.MU_1998, lh.MAP_J)}
    assert (int(method[5]), float(method[6]), float(method[7])) == (lh.BATCH_1998, lh.MU_1998, lh.MAP_J)
    minutes = [sum(float(r["seconds"]) for r in csv_rows(name)) / len(csv_rows(name)) / 60
               for name in ("lenet1998_b1_val.csv", "lenet1998_val.csv")]
    assert [int(said[5]), int(said[6])] == [round(m) for m in minutes]


def test_notebooks_rough_guide_and_batch_ratios_are_what_the_csvs_hold():
    """Section 10's one pass as a rough guide (32 per update's gap after one pass and after 20), its
    "about a fifth" of the time, one image per update's seeds on both sides of 8 per update's, and 32
    per update's single learning mu."""
    text = " ".join(notebook_text().split())
    rows = latest_batch_rows()
    early = re.search(r"32 images per update learned only with μ = 2\.0 of the \w+ tried, and is (\d+) "
                      r"points behind this early", text)
    ours = float(rows[(lh.BATCH_1998, lh.MU_1998)]["val_error"])
    after_one = 100 * (float(rows[(32, 2.0)]["val_error"]) - ours)
    assert early and int(early[1]) == round(after_one)
    shrank = re.search(r"One pass is a rough guide, though: over 20 passes, 32 per update's gap to 8 per "
                       r"update shrank to ([\d.]+) points", text)
    after_20 = mean_after_20("lenet1998_b32_val.csv", "val") - mean_after_20("lenet1998_val.csv", "val")
    assert shrank and float(shrank[1]) == pytest.approx(after_20, abs=0.006) and after_20 < after_one / 10
    fifth = float(rows[(lh.BATCH_1998, lh.MU_1998)]["seconds"]) / float(rows[(1, lh.MU_1998)]["seconds"])
    assert "about a fifth of one image per update's" in text and 0.17 <= fifth <= 0.23
    b1 = [100 * float(r["eval_error"]) for r in csv_rows("lenet1998_b1_val.csv")]
    b8 = [100 * float(r["eval_error"]) for r in csv_rows("lenet1998_val.csv")]
    assert "two seeds lie on both sides of 8 per update's" in text and min(b1) < min(b8) <= max(b8) < max(b1)
    learned = [mu for (b, mu), r in rows.items() if b == 32 and float(r["val_error"]) < 0.5]
    tried = sum(b == 32 for b, _ in rows)
    assert learned == [2.0]
    assert f"learned only with μ = 2.0 of the {['four', 'five', 'six'][tried - 4]} tried" in text


J_FILES = ("lenet1998_j2_val.csv", "lenet1998_j5_val.csv", "lenet1998_val.csv", "lenet1998_j20_val.csv")


def test_j_is_the_lowest_validation_error_of_those_tried_and_08_says_so():
    """Section 11's choice of j: lh.MAP_J has the lowest mean validation error over 20 passes of the
    four j tried (8 per update, mu 0.5, the same seeds), the notebook prints each, and its words (the
    gap to j = 10, the widest spread of one j's seeds, j = 20 higher on every seed) hold."""
    by_j: dict[float, dict[str, float]] = {}
    for name in J_FILES:
        rows = [r for r in csv_rows(name) if r["eval_set"] == "val" and int(r["passes"]) == 20]
        assert {(int(r["batch_size"]), float(r["mu"])) for r in rows} == {(lh.BATCH_1998, lh.MU_1998)}, name
        assert len({r["j"] for r in rows}) == 1, name
        by_j[float(rows[0]["j"])] = {r["seed"]: 100 * float(r["eval_error"]) for r in rows}
    assert sorted(by_j) == [2.0, 5.0, 10.0, 20.0] and len({tuple(sorted(e)) for e in by_j.values()}) == 1
    mean = {j: statistics.mean(e.values()) for j, e in by_j.items()}
    assert min(mean, key=mean.get) == lh.MAP_J
    printed = notebook_outputs()
    for j, errors in by_j.items():
        line = re.search(rf"^ +{j:g} +(\d+) +([\d.]+)% +([\d.]+)% +([\d.]+)% +lenet1998", printed, re.M)
        assert line, f"08 should print j = {j:g}"
        assert int(line[1]) == len(errors)
        assert [float(v) for v in line.groups()[1:]] == pytest.approx(
            [mean[j], min(errors.values()), max(errors.values())], abs=0.006)
        each = re.findall(r"seed (\d+) ([\d.]+)%", printed[line.end():].split("\n")[0])
        assert {seed: float(e) for seed, e in each} == pytest.approx(errors, abs=0.006)
    text = " ".join(notebook_text().split())
    gap = re.search(r"j = (\d+) had the lowest mean, ([\d.]+) points below j = 10's", text)
    assert gap and float(gap[1]) == lh.MAP_J and float(gap[2]) == pytest.approx(mean[10.0] - mean[lh.MAP_J],
                                                                                abs=0.006)
    spread = {j: max(e.values()) - min(e.values()) for j, e in by_j.items()}
    widest = re.search(r"Between 2, 5 and 10 the means lie within ([\d.]+) points of each other, less than "
                       r"the spread between the two seeds of j = (\d+) \(([\d.]+) points\)", text)
    close = [2.0, 5.0, 10.0]
    assert widest and float(widest[2]) == max(close, key=spread.get)
    within = max(mean[j] for j in close) - min(mean[j] for j in close)
    assert float(widest[1]) == pytest.approx(within, abs=0.006)
    assert float(widest[3]) == pytest.approx(max(spread[j] for j in close), abs=0.006)
    assert within < float(widest[3])
    assert "j = 20 ended higher than every other j on both seeds" in text
    assert all(by_j[20.0][seed] > by_j[j][seed] for j in close for seed in by_j[20.0])
    assert f"**j = {lh.MAP_J:g}** (`lh.MAP_J`)" in text
    test = [[r for r in csv_rows(name) if r["eval_set"] == "test"] for name in ("lenet1998.csv",
                                                                               "lenet1998_j10.csv")]
    assert {float(r["j"]) for r in test[0]} == {lh.MAP_J}

    def mean_of(rows: list[dict], column: str) -> str:
        return f"{100 * statistics.mean(float(r[column]) for r in rows):.2f}"

    means = [mean_of(rows, "eval_error") for rows in test]
    train19 = [mean_of(rows, "train_error_19") for rows in test]
    said = re.search(r"On the test set \(the last two lines\), j = 5 ended at the same mean error as j = 10, "
                     r"([\d.]+) % both, with a lower training error after 19 passes, ([\d.]+) % against "
                     r"([\d.]+) %: the ([\d.]+) points", text)
    assert said and means[0] == means[1] == said[1]
    assert [said[2], said[3]] == train19 and float(train19[0]) < float(train19[1])
    for j, mean_error, train in zip((lh.MAP_J, 10.0), means, train19, strict=True):  # printed under the table
        line = f"test, j = {j:g}: mean error {mean_error}%, training error after 19 passes {train}%"
        assert line in printed
    low = min(100 * float(r["train_error_19"]) for r in test[0])
    assert "one of our seeds ended its 19th pass with a training error as low as the paper's" in text
    assert low <= 100 * lh.PAPER_1998["train_error_19"]
    assert float(said[4]) == pytest.approx(mean[10.0] - mean[lh.MAP_J], abs=0.006)


def test_08s_minutes_of_one_image_per_update_are_the_csvs():
    """Section 7 gives the measured minutes of section 10's runs of one image per update."""
    rows = [r for r in csv_rows("lenet1998_b1_val.csv") if int(r["batch_size"]) == 1]
    said = re.search(r"section 10's two such runs on the validation split, on (\S+) images, took about (\d+) "
                     r"minutes each",
                     " ".join(notebook_text().split()))
    assert said and len(rows) == 2 and {r["train_images"] for r in rows} == {said[1].replace(",", "")}
    assert all(abs(float(r["seconds"]) / 60 - int(said[2])) < 1 for r in rows)


def test_08s_whole_runs_of_mu_are_what_the_csvs_hold():
    """Section 11's check of mu over whole runs: the printed table (each mu's seeds, mean, min, max,
    training error after 19 passes), and the words: 0.35 higher by the gap said, in training error too;
    1.0 the same mean as lh.MU_1998, which stays."""
    files = {0.35: "lenet1998_mu0.35_val.csv", lh.MU_1998: "lenet1998_j5_val.csv",
             1.0: "lenet1998_mu1_val.csv"}
    printed, text = notebook_outputs(), " ".join(notebook_text().split())
    mean, train = {}, {}
    for mu, name in files.items():
        rows = [r for r in csv_rows(name) if r["eval_set"] == "val" and int(r["passes"]) == 20]
        errors = [100 * float(r["eval_error"]) for r in rows]
        mean[mu] = statistics.mean(errors)
        train[mu] = statistics.mean(100 * float(r["train_error_19"]) for r in rows)
        line = re.search(rf"^ *{mu:g} +(\d+) +([\d.]+)% +([\d.]+)% +([\d.]+)% +([\d.]+)%$", printed, re.M)
        assert line and int(line[1]) == len(errors) == 2
        assert [float(v) for v in line.groups()[1:]] == pytest.approx(
            [mean[mu], min(errors), max(errors), train[mu]], abs=0.006)
    gap = re.search(r"μ = 0\.35, a step towards the paper's 0\.02, learned, but ended ([\d.]+) points "
                    r"higher than μ = 0\.5 on average, and fitted its training images less closely too", text)
    assert gap and float(gap[1]) == pytest.approx(mean[0.35] - mean[lh.MU_1998], abs=0.006)
    assert train[0.35] > train[lh.MU_1998] and max(mean.values()) == mean[0.35]
    same = re.search(r"μ = 1\.0 ended with the same mean as 0\.5, ([\d.]+) %", text)
    assert same and f"{mean[1.0]:.2f}" == f"{mean[lh.MU_1998]:.2f}" == same[1] and lh.MU_1998 == 0.5
    assert "μ = 0.35 ended with higher training and validation errors than 0.5 (section 11)" in text
    assert "over 20 passes at j = 5, μ = 1.0 ended with the same validation error and μ = 0.35 with a " \
        "higher one (below)" in text


def test_notebooks_words_on_distortions_are_what_the_csvs_hold():
    """Section 13: the test error's fall with distortions against the paper's, the gap to the paper's
    0.8 %, the seeds on both sides of it, the validation fall and the training error's rise."""
    def mean_and_rows(name: str, eval_set: str) -> tuple[float, list[dict]]:
        rows = [r for r in csv_rows(name) if r["eval_set"] == eval_set and int(r["passes"]) == 20]
        return statistics.mean(100 * float(r["eval_error"]) for r in rows), rows

    plain, plain_rows = mean_and_rows("lenet1998.csv", "test")
    distorted, distorted_rows = mean_and_rows("lenet1998_distort.csv", "test")
    plain_val, _ = mean_and_rows("lenet1998_j5_val.csv", "val")
    distorted_val, _ = mean_and_rows("lenet1998_distort_val.csv", "val")
    assert {r["distort"] for r in distorted_rows} == {"True"}
    assert {r["distort"] for r in plain_rows} == {"False"}
    paper, paper_distorted = 100 * lh.PAPER_1998["test_error"], 100 * lh.PAPER_1998["test_error_distortions"]
    text = " ".join(notebook_text().split())
    said = re.search(r"With distortions the mean test error fell from ([\d.]+) % to ([\d.]+) %, by "
                     r"([\d.]+) points, where the paper's fell by ([\d.]+), from 0\.95 % to 0\.8 % "
                     r"\(section III\.B\)\. Our mean with distortions is ([\d.]+) points above the paper's "
                     r"figure, and our five seeds lie on both sides of it, from ([\d.]+) % to ([\d.]+) %\. "
                     r"On the validation split, with two seeds, the fall was smaller: ([\d.]+) points\. The "
                     r"training error, measured on the training images as they are, rose from ([\d.]+) % "
                     r"to ([\d.]+) %", text)
    assert said, "section 13's reading of its table"
    got = [float(v) for v in said.groups()]
    seeds = [100 * float(r["eval_error"]) for r in distorted_rows]
    train19 = [statistics.mean(100 * float(r["train_error_19"]) for r in rows)
               for rows in (plain_rows, distorted_rows)]
    assert got == pytest.approx([plain, distorted, plain - distorted, paper - paper_distorted,
                                 distorted - paper_distorted, min(seeds), max(seeds),
                                 plain_val - distorted_val, *train19], abs=0.006)
    assert len(seeds) == 5 and min(seeds) < paper_distorted < max(seeds)  # "on both sides of it"
    assert plain_val - distorted_val < plain - distorted  # "the fall was smaller"


def test_the_ladders_sdlm_is_j_10_and_08_says_where_j_5_would_land():
    """Section 12's SDLM rung ran with j = 10 (as every MAP rung of the ladder); its text gives the
    chosen j's validation figure from lenet1998_j5_val.csv and that its seeds overlap SGD's."""
    assert {float(r["j"]) for r in csv_rows("lenet1998_val.csv")} == {10.0}
    assert {float(r["j"]) for r in csv_rows("lenet1998_swaps.csv") if r["output"] == "rbf"} == {10.0}
    chosen = [100 * float(r["eval_error"]) for r in csv_rows(f"lenet1998_j{lh.MAP_J:g}_val.csv")]
    sgd = ladder_from_csvs()["SGD"]
    said = re.search(r"with j = (\d+), section 11's choice, SDLM ended at ([\d.]+) % "
                     r"\(([\d.]+)–([\d.]+) %\), and its seeds overlap SGD's",
                     " ".join(notebook_text().split()))
    assert said and float(said[1]) == lh.MAP_J
    assert [float(v) for v in said.groups()[1:]] == pytest.approx(
        [statistics.mean(chosen), min(chosen), max(chosen)], abs=0.006)
    assert min(chosen) < sgd[2] and sgd[1] < max(chosen)  # the two ranges (min, max) overlap


def test_lenet1998_py_refuses_a_csv_with_other_columns(tmp_path):
    """A CSV from before a column was added is refused, not appended to under the wrong names."""
    import lenet1998  # benchmarks/ is on sys.path (conftest)

    old = tmp_path / "old.csv"
    old.write_text(",".join(lenet1998.SEED_COLUMNS[:-1]) + "\n")
    with pytest.raises(SystemExit, match="has the columns"):
        lenet1998.append_row(old, lenet1998.SEED_COLUMNS, {"seed": 0})
    new = tmp_path / "new.csv"
    lenet1998.append_row(new, lenet1998.SEED_COLUMNS, {"seed": 0, "j": 5.0})
    lenet1998.append_row(new, lenet1998.SEED_COLUMNS, {"seed": 1, "j": 5.0})
    with open(new, newline="") as f:
        assert [r["seed"] for r in csv.DictReader(f)] == ["0", "1"]


def test_the_reproductions_wall_clock_said_in_08_and_the_teachers_page_is_the_csvs():
    """"Five seeds ... about 20 minutes on two cores" (08's introduction and section 7; the teachers'
    page): from the first seed's start (its finish time less its seconds) to the last seed's finish,
    in lenet1998.csv (its dates are to the minute)."""
    from datetime import datetime, timedelta

    rows = [r for r in csv_rows("lenet1998.csv") if r["eval_set"] == "test"]
    finish = [datetime.strptime(r["date"], "%Y-%m-%d %H:%M UTC") for r in rows]
    start = min(f - timedelta(seconds=float(r["seconds"])) for f, r in zip(finish, rows, strict=True))
    minutes = (max(finish) - start).total_seconds() / 60
    assert len(rows) == 5 and 15 <= minutes <= 25, minutes  # "about 20 minutes"
    text = " ".join(notebook_text().split())
    assert "(five seeds of 20 passes, about 20 minutes on a 2-core CPU)" in text
    assert "five seeds in about 20 minutes on two cores" in text
    teachers = " ".join((ROOT / "website" / "teachers.md").read_text().split())
    assert "the full reproduction is a benchmark of about 20 minutes" in teachers


def test_08s_errors_of_one_answer_for_every_digit_are_the_printed_ones():
    """Section 10: "errors near 90 % mean that nothing was learned", with the figures its cell prints
    (nbval checks the print against the validation labels), and one of them is a run's in the table."""
    text = " ".join(notebook_text().split())
    said = re.search(r"a network that gives every validation digit the same answer scores between ([\d.]+) % "
                     r"and ([\d.]+) % \(printed under the table\), ([\d.]+) % if that answer is 3", text)
    printed = re.search(r"one answer for every validation digit: error ([\d.]+)% to ([\d.]+)% "
                        r"\(the answer 3: ([\d.]+)%\)", notebook_outputs())
    assert said and printed and said.groups() == printed.groups()
    assert sum(100 * float(r["val_error"]) == pytest.approx(float(said[3]), abs=0.006)
               for r in latest_batch_rows().values()) >= 2  # the same error from several settings


def test_one_image_per_update_on_the_test_set_as_08_and_the_results_page_say():
    """Section 10's run of the paper's one image per update on the test set (lenet1998_b1.csv) beside
    section 9's 8 per update (lenet1998.csv): the same settings but the batch, the same seeds, and every
    figure 08 (sections 9, 10 and the summary) and the results page quote from them."""
    every_b1 = {r["seed"]: r for r in csv_rows("lenet1998_b1.csv") if r["eval_set"] == "test"}
    b8 = {r["seed"]: r for r in csv_rows("lenet1998.csv") if r["eval_set"] == "test"}
    assert len(b8) >= 5 and set(b8) <= set(every_b1)
    b1 = {seed: every_b1[seed] for seed in b8}  # the seeds both ran: section 10's table
    same = ("passes", "eta_per_image", "mu", "j", "hessian_samples", "train_images", "eval_images", "distort")
    settings = {tuple(r[k] for k in same) for r in [*every_b1.values(), *b8.values()]}
    assert len(settings) == 1  # every setting but the batch
    assert {(int(r["batch_size"]), float(r["mu"]), float(r["j"]), int(r["passes"]), int(r["train_images"]))
            for r in every_b1.values()} == {(1, lh.MU_1998, lh.MAP_J, lh.PAPER_1998["passes"], 60_000)}
    e1, e8 = ({s: 100 * float(r["eval_error"]) for s, r in rows.items()} for rows in (b1, b8))
    m1, m8 = statistics.mean(e1.values()), statistics.mean(e8.values())
    t1 = statistics.mean(100 * float(r["train_error_19"]) for r in b1.values())
    spread = min(max(e.values()) - min(e.values()) for e in (e1, e8))
    higher = {2: "two", 3: "three", 4: "four"}[sum(e1[s] > e8[s] for s in e1)]
    paper, paper19 = 100 * lh.PAPER_1998["test_error"], 100 * lh.PAPER_1998["train_error_19"]
    assert m1 < m8 and m8 - m1 < spread and m1 > paper and t1 > paper19
    number = r"([\d.]+)"
    text = " ".join(notebook_text().split())
    reading = ("One image per update ended at a mean test error of N %, N points below 8 per update's N %; "
               "on WORD of the five seeds it ended higher. One of its seeds reached the paper's N %, but its "
               "mean stays N points above the paper's, and its training error after 19 passes, N %, above "
               "the paper's N % (section III.B). The N points are less than the spread between the seeds of "
               "either (the lowest to the highest): these five seeds cannot tell whether updating after "
               "every image, as the paper did, closes any of the N points between 8 per update and the paper")
    said = re.search(re.escape(reading).replace("N", number).replace("WORD", r"(\w+)"), text)
    assert said, "section 10's reading of lenet1998_b1.csv"
    assert said[4] == higher and min(e1.values()) == pytest.approx(paper, abs=0.006)
    assert [float(said[i]) for i in (1, 2, 3, 5, 6, 7, 8, 9, 10)] == pytest.approx(
        [m1, m8 - m1, m8, paper, m1 - paper, t1, paper19, m8 - m1, m8 - paper], abs=0.006)
    others = [(rf"With one image per update, as the paper trained, the same five seeds ended at a mean "
               rf"of {number} % \(section 10\)", [m1]),
              (rf"One image per update, as in the paper, ended at {number} % on average against 8 per "
               rf"update's {number} %, a difference less than the spread between seeds; over",
               [m1, m8])]
    for pattern, figures in others:
        found = re.search(pattern, text)
        assert found and [float(v) for v in found.groups()] == pytest.approx(figures, abs=0.006), pattern
    page = " ".join((ROOT / "website" / "results.md").read_text().split())
    said = re.search(rf"`--batch-size 1 --out benchmarks/results/lenet1998_b1`, run after j was chosen\), "
                     rf"ended at {number} % \({number}–{number} %\) test error over the same five seeds, "
                     rf"with {number} % training error after 19 passes: {number} points below 8 per update "
                     rf"on average, less than the spread between the seeds, and higher on (\w+) of the five",
                     page)
    assert said, "the results page's one image per update"
    assert [float(v) for v in said.groups()[:5]] == pytest.approx(
        [m1, min(e1.values()), max(e1.values()), t1, m8 - m1], abs=0.006)
    assert said[6] == higher


def test_one_image_per_update_over_every_seed_as_08_and_the_results_page_say():
    """Section 10's nine seeds of one image per update (every test row of lenet1998_b1.csv): its
    mean, lowest and highest test error, the standard error of the mean, the gap to the paper and
    the training error after 19 passes, as 08 (section 9, section 10, the summary) and the results
    page give them."""
    rows = [r for r in csv_rows("lenet1998_b1.csv") if r["eval_set"] == "test" and int(r["passes"]) == 20]
    errors = [100 * float(r["eval_error"]) for r in rows]
    train19 = statistics.mean(100 * float(r["train_error_19"]) for r in rows)
    mean, spread = statistics.mean(errors), statistics.stdev(errors) / len(errors) ** 0.5
    paper, paper19 = 100 * lh.PAPER_1998["test_error"], 100 * lh.PAPER_1998["train_error_19"]
    seeds = sorted(int(r["seed"]) for r in rows)
    assert seeds == list(range(len(seeds))) and len(seeds) > 5
    count = {9: "nine"}[len(seeds)]
    matched = {2: "two"}[sum(e == pytest.approx(paper, abs=1e-9) for e in errors)]
    number = r"([\d.]+)"
    text = " ".join(notebook_text().split())
    found = re.search(rf"was also trained from seeds 5 to {seeds[-1]} \(`benchmarks/lenet1998.py "
                      rf"--batch-size 1 --seeds 5-{seeds[-1]} --out benchmarks/results/lenet1998_b1`, the "
                      rf"same CSV\): {count} seeds in all", text)
    assert found, "section 10's four more seeds"
    reading = (rf"Over {count} seeds, one image per update ended at a mean test error of {number} % "
               rf"\({number} % to {number} %\), {number} points above the paper's {number} % "
               rf"\(section III.B\) and about (\w+) standard errors: {count} seeds are enough to say that "
               rf"our reproduction, trained as the paper was, ends above the paper's figure on average, by "
               rf"about a tenth of a point, though (\w+) of its seeds matched it. Its training error after "
               rf"19 passes, {number} % on average, stays above the paper's {number} % \(III.B\) too")
    said = re.search(reading, text)
    assert said, "section 10's reading of every seed"
    figures = [float(said[i]) for i in (1, 2, 3, 4, 5, 8, 9)]
    assert figures == pytest.approx([mean, min(errors), max(errors), mean - paper, paper, train19, paper19],
                                    abs=0.006)
    assert said[6] == {3: "three"}[round((mean - paper) / spread)] and said[7] == matched
    assert 0.05 <= mean - paper <= 0.15 and mean - paper > 2 * spread and train19 > paper19
    for pattern in (rf"and {count} seeds at {number} %\.",
                    rf"over {count} seeds it ended at {number} %, {number} points above the paper's "
                    rf"{number} %"):
        found = re.search(pattern, text)
        assert found, pattern
        figures = [float(v) for v in found.groups()]
        assert figures == pytest.approx([mean, mean - paper, paper][:len(figures)], abs=0.006)
    page = " ".join((ROOT / "website" / "results.md").read_text().split())
    said = re.search(rf"it ended at {number} % \({number}–{number} %\) test error over {count} seeds, "
                     rf"{number} points above the paper's {number} %, with a standard error of the mean of "
                     rf"{number} points, and {number} % training error after 19 passes", page)
    assert said, "the results page's nine seeds"
    assert [float(v) for v in said.groups()] == pytest.approx(
        [mean, min(errors), max(errors), mean - paper, paper, spread, train19], abs=0.006)


def test_08s_words_on_the_max_pooling_rungs_first_epoch_are_the_csvs():
    """08, section 12: the ReLU network with max-pooling trains, but it too first answered 1 for
    every validation digit after its first epoch on both seeds, by lenet1998_swaps.csv."""
    rows = [r for r in csv_rows("lenet1998_swaps.csv") if r["rung"] == "+ max-pooling"]
    first = {r["seed"]: float(r["val_per_epoch"].split()[0]) for r in rows}
    last = [float(r["val_error"]) for r in rows]
    assert len(first) >= 2 and len(set(first.values())) == 1 and max(last) < 0.02, (first, last)
    ones = re.search(r"validation digits that are not 1s: ([\d.]+)%", notebook_outputs())
    assert ones and f"{100 * next(iter(first.values())):.2f}" == ones[1]
    text = " ".join(notebook_text().split())
    assert (f"{ones[1]} % validation error after its first epoch, on both seeds" in text
            and len(first) == 2)
