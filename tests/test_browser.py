"""The series in a real browser: the website, notebook 02 run from JupyterLab, the draw-a-digit canvas.

Headless Chromium (Debian's package `chromium`; `make test` installs it when missing) driven by
Playwright. Screenshots go to build/screenshots/: site-*.png, jupyterlab-02-run-all.png,
jupyterlab-06-draw-a-digit.png.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from conftest import needs_mnist
from test_draw import WEIGHTS_FILE, exported_model

import lenet5_helpers as lh
from lenet5_series import publish
from lenet5_series.mnist import resolve_data_dir

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "build" / "screenshots"
NOTEBOOKS = publish.notebooks()
# As root, in a sandbox, on a machine whose network reaches nothing but package registries.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
INSTALL_HINT = ("Chromium is needed for the browser tests and was not found. Install it with "
                "`sudo apt-get install chromium` (Debian, Ubuntu; `make test` does it when run as "
                "root), or set LENET5_CHROMIUM to a Chromium or Chrome binary.")


def chromium_path() -> str | None:
    """LENET5_CHROMIUM, else the chromium on the PATH (Debian's package: /usr/bin/chromium)."""
    for candidate in (os.environ.get("LENET5_CHROMIUM"), shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@pytest.fixture(scope="module")
def browser():
    path = chromium_path()
    if path is None:
        if os.environ.get("CI"):  # in CI the browser tests must run, never be skipped
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


class Watched:
    """A page and everything that went wrong on it: console errors, page errors, failed or
    off-site requests (an off-site request is refused, as on a classroom server with no internet)."""

    def __init__(self, browser, origin: str, viewport=(1280, 900), **page_options):
        self.page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]}, **page_options)
        self.problems: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(
            f"console error: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("response", lambda r: r.status >= 400 and self.problems.append(
            f"HTTP {r.status}: {r.url}"))

        def only_local(route):
            if route.request.url.startswith((origin, "data:", "blob:")):
                return route.continue_()
            self.problems.append(f"off-site request: {route.request.url}")
            return route.abort()

        self.page.route("**/*", only_local)

    def close(self) -> None:
        self.page.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# The website
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site():
    """The website built from the stored notebooks, served on a local port as a classroom server would."""
    out = publish.build_site(ROOT / "build" / "site")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(Quiet, directory=str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield out, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def notebook_title(path: Path) -> str:
    nb = nbformat.read(str(path), as_version=4)
    return nb.cells[0].source.splitlines()[0].lstrip("# ").strip()


def image_outputs(path: Path) -> int:
    """How many pictures the stored notebook shows (outputs with image/png)."""
    nb = nbformat.read(str(path), as_version=4)
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
               for o in c.outputs)


def test_the_site_has_a_page_per_notebook(site):
    out, _ = site
    pages = sorted(str(p.relative_to(out)) for p in out.rglob("*.html")
                   if not p.relative_to(out).parts[0].startswith("_"))
    expected = ["genindex.html", "index.html", "search.html"] + [
        f"notebooks/{p.stem}.html" for p in NOTEBOOKS] + [
        f"{p.stem}.html" for p in (ROOT / "website").glob("*.md") if p.stem != "index"]
    assert pages == sorted(expected)


def check_page(browser, base: str, path: str):
    """Open a page of the site; every check that all pages share; returns the open page."""
    watched = Watched(browser, base)
    page = watched.page
    page.goto(base + path)
    page.wait_for_load_state("networkidle")
    broken = page.evaluate("Array.from(document.images)"
                           ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
    headings = page.locator("main h1").all_inner_texts()
    name = "site-" + path.replace("/", "-").removesuffix(".html") + ".png"
    page.screenshot(path=str(SCREENSHOTS / name))
    assert watched.problems == [], f"{path}: {watched.problems}"
    assert broken == [], f"{path}: images that did not load: {broken}"
    assert headings and all(h.strip() for h in headings), f"{path}: no heading"
    return watched


def test_the_start_page_says_what_the_series_is_and_links_every_notebook(browser, site):
    _, base = site
    watched = check_page(browser, base, "index.html")
    page = watched.page
    text = page.locator("main").inner_text()
    assert "LeNet-5" in page.locator("main h1").first.inner_text()
    assert "make run" in text and "jupyter lab" in text  # how to run it
    for path in NOTEBOOKS:
        link = page.locator(f'main a[href="notebooks/{path.stem}.html"]')
        assert link.count() >= 1, f"the start page does not link {path.stem}"
    assert page.locator("main table").count() >= 1  # the notebooks and what each teaches
    watched.close()


@pytest.mark.parametrize("page", ["results", "teachers", "troubleshooting"])
def test_the_results_teachers_and_troubleshooting_pages_open_without_error(browser, site, page):
    check_page(browser, site[1], f"{page}.html").close()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_page_shows_its_outputs_navigation_and_folded_solutions(browser, site, path):
    _, base = site
    watched = check_page(browser, base, f"notebooks/{path.stem}.html")
    page = watched.page
    assert page.locator("main h1").first.inner_text().strip().rstrip("#").strip() == notebook_title(path)
    # the stored figures are there (each a picture that loaded, checked above)
    assert page.locator("main .cell_output img").count() == image_outputs(path)
    assert page.locator("main .cell_output").count() > 0
    # navigation: every notebook in the sidebar, and previous / next
    for other in NOTEBOOKS:
        href = "#" if other == path else f"{other.stem}.html"  # the sidebar marks the page itself
        assert page.locator(f'nav.bd-links a[href="{href}"]').filter(
            has_text=notebook_title(other)).count() == 1, f"{other.stem} missing in the sidebar"
    i = NOTEBOOKS.index(path)
    prev_link = page.locator("a.left-prev").get_attribute("href")
    assert prev_link.endswith("index.html" if i == 0 else f"{NOTEBOOKS[i - 1].stem}.html")
    if i + 1 < len(NOTEBOOKS):
        assert page.locator("a.right-next").get_attribute("href").endswith(f"{NOTEBOOKS[i + 1].stem}.html")
    # exercises, with the solutions folded until the learner opens them
    details = page.locator("main details")
    assert "Exercises" in page.locator("main").inner_text() and details.count() >= 1
    assert details.first.get_attribute("open") is None
    solution = details.first.locator("li, p, pre").first  # the first thing in the solutions
    assert not solution.is_visible()
    details.first.locator("summary").click()
    assert solution.is_visible()
    details.first.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / f"site-notebooks-{path.stem}-solutions.png"))
    assert watched.problems == []
    watched.close()


# --------------------------------------------------------------------------------------------
# JupyterLab
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    """JupyterLab on a free local port with a token, over a copy of the notebooks and the helper."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(ROOT / "notebooks", root / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copy(ROOT / "lenet5_helpers.py", root / "notebooks" / "lenet5_helpers.py")
    # A settings folder of its own: no news or update checks (nothing can be fetched), and every
    # cell kept on the page (JupyterLab otherwise renders only the cells in view).
    settings = root / "settings" / "@jupyterlab"
    for extension, name, values in [
            ("apputils-extension", "notification", {"fetchNews": "false", "checkForUpdates": False}),
            ("notebook-extension", "tracker", {"windowingMode": "none", "autoStartDefaultKernel": True})]:
        (settings / extension).mkdir(parents=True, exist_ok=True)
        (settings / extension / f"{name}.jupyterlab-settings").write_text(json.dumps(values))
    port, token = free_port(), "lenet5-browser-test"
    env = dict(os.environ, LENET5_RUNS_DIR=str(root / "runs"), LENET5_DATA_DIR=str(resolve_data_dir()),
               JUPYTERLAB_SETTINGS_DIR=str(root / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(root / "workspaces"),
               JUPYTER_RUNTIME_DIR=str(root / "runtime"), JUPYTER_CONFIG_DIR=str(root / "config"))
    log = open(root / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--ServerApp.port_retries=0", *(["--allow-root"] if os.geteuid() == 0 else [])],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log_text = (root / "jupyterlab.log").read_text()
                    raise RuntimeError("JupyterLab did not start:\n" + log_text) from None
                time.sleep(0.5)
        yield {"base": base, "token": token, "root": root, "runs": root / "runs"}
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def menu(page, top: str, item: str) -> None:
    """Choose a command from JupyterLab's menu bar, as a learner would."""
    page.get_by_role("menuitem", name=top, exact=True).click()
    page.get_by_role("menuitem", name=item, exact=True).click()


def open_and_run_all(browser, lab: dict, name: str, timeout_s: float = 180):
    """Open notebooks/<name> in JupyterLab, clear the stored outputs, choose Run > Run All Cells,
    and wait until every code cell has run (each gets a new execution count)."""
    watched = Watched(browser, lab["base"], viewport=(1400, 1000))
    page = watched.page
    # a workspace of its own, reset: only this notebook is open, and it is the active one
    page.goto(f"{lab['base']}/lab/workspaces/{name[:2]}/tree/notebooks/{name}?reset&token={lab['token']}")
    try:
        page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
        page.get_by_text(re.compile(r"Python 3 \(ipykernel\) \| Idle")).wait_for(timeout=90_000)
        code_cells = page.locator(".jp-Notebook .jp-CodeCell")
        menu(page, "Edit", "Clear Outputs of All Cells")
        page.wait_for_function("() => !document.querySelector('.jp-Notebook .jp-OutputArea-output')",
                               timeout=60_000)
        assert all(p.strip() == "[ ]:" for p in code_cells.locator(".jp-InputPrompt").all_inner_texts())
        menu(page, "Run", "Run All Cells")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            prompts = code_cells.locator(".jp-InputPrompt").all_inner_texts()
            if prompts and all(re.fullmatch(r"\[\d+\]:", p.strip()) for p in prompts):
                break
            time.sleep(1)
        else:
            raise AssertionError(f"{name}: not every cell ran within {timeout_s} s: {prompts}")
    except Exception:
        page.screenshot(path=str(SCREENSHOTS / f"jupyterlab-{name[:2]}-failed.png"))  # what went wrong
        raise
    return watched, code_cells


@pytest.fixture(scope="module")
def trained_run(jupyterlab) -> Path:
    """A short training run (5,000 images, 2 epochs) where notebook 06 finds it as the newest run."""
    lh.seed_everything(0)
    data = lh.mnist_tensors(train_subset=5000)
    run_dir = jupyterlab["runs"] / "20260101-000000"
    lh.fit(lh.LeNet5(), data, run_dir, epochs=2, seed=0, progress=False)
    return run_dir


def errors_shown(page) -> list[str]:
    """Error outputs (tracebacks) in the open notebook."""
    return page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                        ).filter(has_text=re.compile("Traceback|Error")).all_inner_texts()


@needs_mnist
def test_notebook_02_runs_all_cells_from_the_jupyterlab_ui(browser, jupyterlab):
    watched, code_cells = open_and_run_all(browser, jupyterlab, "02-building-lenet5.ipynb")
    page = watched.page
    stored = nbformat.read(str(ROOT / "notebooks" / "02-building-lenet5.ipynb"), as_version=4)
    stored_code = [c for c in stored.cells if c.cell_type == "code"]
    assert code_cells.count() == len(stored_code)
    assert errors_shown(page) == []
    last = code_cells.last
    last.scroll_into_view_if_needed()
    shown = last.locator(".jp-OutputArea-output").all_inner_texts()
    expected = "".join(o.get("text", "") for o in stored_code[-1].outputs if o.output_type == "stream")
    assert shown and expected.strip() and expected.strip() in "\n".join(shown)
    page.screenshot(path=str(SCREENSHOTS / "jupyterlab-02-run-all.png"))
    assert watched.problems == []
    watched.close()


def wait_for_widget_text(page, text: str, timeout_s: float = 90) -> None:
    """Wait until an HTML widget shows `text` (the kernel answers mouse events one by one)."""
    page.wait_for_function("text => Array.from(document.querySelectorAll('.widget-html-content'))"
                           ".some(e => e.innerText.includes(text))", arg=text, timeout=timeout_s * 1000)


def settled_text(locator, quiet_s: float = 1.5, timeout_s: float = 30) -> str:
    """The element's text once it has stopped changing for quiet_s seconds."""
    text, since, deadline = locator.inner_text(), time.monotonic(), time.monotonic() + timeout_s
    while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
        time.sleep(0.25)
        now = locator.inner_text()
        if now != text:
            text, since = now, time.monotonic()
    return text


@needs_mnist
def test_draw_a_digit_in_jupyterlab_shows_the_networks_reading(browser, jupyterlab, trained_run):
    watched, code_cells = open_and_run_all(browser, jupyterlab, "06-draw-a-digit.ipynb")
    page = watched.page
    assert errors_shown(page) == []
    canvas = page.locator(".jp-OutputArea-output canvas").last
    canvas.wait_for(state="visible", timeout=30_000)
    canvas.scroll_into_view_if_needed()
    page.get_by_text(re.compile(r"Python 3 \(ipykernel\) \| Idle")).wait_for(timeout=30_000)
    verdict = page.locator(".widget-html-content").filter(has_text=re.compile("Draw a digit|reads"))
    assert "Draw a digit" in verdict.first.inner_text()
    time.sleep(0.5)  # let the page settle after scrolling
    box = canvas.bounding_box()
    size = int(canvas.get_attribute("width"))
    # a vertical line down the middle, 70 % of the canvas tall: a "1", drawn at a hand's pace
    x, y0, y1 = box["x"] + box["width"] / 2, box["y"] + 0.15 * box["height"], box["y"] + 0.85 * box["height"]
    points = [(x, y0 + (y1 - y0) * i / 12) for i in range(13)]
    page.mouse.move(*points[0])
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*point)
        time.sleep(0.03)
    page.mouse.up()
    wait_for_widget_text(page, "reads")
    text = settled_text(verdict.first)  # after the kernel has handled the last mouse event
    page.screenshot(path=str(SCREENSHOTS / "jupyterlab-06-draw-a-digit.png"))
    shown = re.search(r"reads (\d) \((\d+)% sure\)", text)
    assert shown, text
    # the helper's reading of the same stroke, with the same trained network
    scale = size / box["width"]
    stroke = [((px - box["x"]) * scale, (py - box["y"]) * scale) for px, py in points]
    model = lh.LeNet5()
    model.load_state_dict(lh.load_checkpoint(trained_run / "checkpoint.pt")["model"])
    expected = lh.digit_probabilities(model, [stroke])
    assert int(shown.group(1)) == expected.argmax().item(), (text, expected)
    assert abs(int(shown.group(2)) - 100 * expected.max().item()) <= 3, (text, expected)
    page.get_by_role("button", name="Clear").click()
    wait_for_widget_text(page, "Draw a digit")
    assert watched.problems == []
    watched.close()


# --------------------------------------------------------------------------------------------
# The draw-a-digit page of the website
# --------------------------------------------------------------------------------------------

def check_reading(state: dict, model) -> None:
    """The page's input, feature maps and probabilities are lh's and PyTorch's for its strokes."""
    import torch
    import torch.nn.functional as F

    x = lh.digit_to_input(lh.center_digit(lh.strokes_to_image(state["strokes"])))
    assert (torch.tensor(state["input"]).reshape(1, 1, 32, 32) - x).abs().max() <= 1e-4
    with torch.no_grad():
        maps1 = F.relu(model.conv1(x))
        maps2 = F.relu(model.conv2(model.pool(maps1)))
        probabilities = torch.softmax(model(x), dim=1)[0]
    assert (torch.tensor(state["maps1"]).reshape(maps1.shape) - maps1).abs().max() <= 1e-4
    assert (torch.tensor(state["maps2"]).reshape(maps2.shape) - maps2).abs().max() <= 1e-4
    assert (torch.tensor(state["probabilities"]) - probabilities).abs().max() <= 1e-4


def canvas_points(box: dict, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Canvas points (0..280) as places on the screen, for a canvas shown at any size."""
    return [(box["x"] + x * box["width"] / 280, box["y"] + y * box["height"] / 280) for x, y in points]


def test_draw_page_reads_mouse_and_touch_strokes_as_lh_and_pytorch(browser, site):
    _, base = site
    # a phone-sized screen with touch; the same page takes the mouse too
    watched = Watched(browser, base, viewport=(412, 915), has_touch=True)
    page = watched.page
    page.goto(base + "draw.html")
    page.wait_for_function("window.drawDigitState !== undefined", timeout=10_000)
    # The first reading (of the 7 the page starts with): how long after draw.js began, in the
    # page's own clock. It fetches 330 KB from the same server and runs the network once, a few
    # milliseconds of work; a second leaves room for a busy 2-core machine, so this checks that
    # nothing slow (a big download, a framework starting) stands before the first reading.
    assert page.evaluate("window.drawDigitFirstReadingMs") <= 1000
    model = exported_model()
    about = json.loads(WEIGHTS_FILE.read_text(encoding="utf-8"))["about"]
    assert about["run"] in page.locator("#draw-run").inner_text()
    assert f"{100 * about['test_accuracy']:.2f} %" in page.locator("#draw-run").inner_text()
    check_reading(page.evaluate("window.drawDigitState"), model)
    assert page.evaluate("document.documentElement.scrollWidth") <= 412  # nothing wider than a phone

    canvas = page.locator("#draw-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    # the mouse: a large 4 in two strokes
    page.get_by_role("button", name="Clear").click()
    four = [[(150, 40), (60, 180), (230, 180)], [(190, 100), (190, 250)]]
    for stroke in four:
        screen = canvas_points(box, stroke)
        page.mouse.move(*screen[0])
        page.mouse.down()
        for point in screen[1:]:
            page.mouse.move(*point, steps=6)
        page.mouse.up()
    state = page.evaluate("window.drawDigitState")
    assert len(state["strokes"]) == 2 and len(state["strokes"][0]) > 3
    ends = [(s[0], s[-1]) for s in state["strokes"]]
    for (start, end), stroke in zip(ends, four, strict=True):  # where the mouse went, in canvas pixels
        assert max(abs(a - b) for a, b in zip(start + end, stroke[0] + stroke[-1], strict=True)) <= 2
    check_reading(state, model)
    assert "reads" in page.locator("#draw-verdict").inner_text()

    # a finger: a small 7 in the top-left corner, as touch events (Chromium's own, through CDP)
    page.get_by_role("button", name="Clear").click()
    cdp = page.context.new_cdp_session(page)
    seven = [(20, 20), (70, 20), (45, 60), (30, 95)]
    path = [(x + (b[0] - x) * i / 5, y + (b[1] - y) * i / 5)
            for (x, y), b in zip(seven, seven[1:], strict=False) for i in range(5)]
    screen = canvas_points(box, path + seven[-1:])
    for kind, (x, y) in [("touchStart", screen[0])] + [("touchMove", p) for p in screen[1:]]:
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": x, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    state = page.evaluate("window.drawDigitState")
    assert len(state["strokes"]) == 1 and len(state["strokes"][0]) >= 10
    check_reading(state, model)
    page.screenshot(path=str(SCREENSHOTS / "site-draw-phone.png"), full_page=True)

    # full screen, for a projector: the square grows
    page.set_viewport_size({"width": 1280, "height": 800})
    small = canvas.bounding_box()["width"]
    page.get_by_role("button", name="Full screen").click()
    page.wait_for_function("document.fullscreenElement && document.fullscreenElement.id === 'draw-app'")
    page.wait_for_timeout(200)
    assert canvas.bounding_box()["width"] > small
    page.screenshot(path=str(SCREENSHOTS / "site-draw-fullscreen.png"))
    assert watched.problems == [], watched.problems  # no console error, nothing asked of another server
    watched.close()
