// Draw a digit: the LeNet-5 of notebook 03, run in the page by hand-written loops.
// Each function mirrors one in lenet5_helpers.py (section 10) or one step of notebook 02, with the
// same arithmetic, so the page reads a drawing exactly as the notebooks do. No library, no network.
"use strict";

const drawStarted = performance.now();  // for the tests: the first reading comes soon after

const LeNet5Page = (() => {
  const SIZE = 280, PEN_WIDTH = 28, MIN_PEN = 2, BOX = 20, FIELD = 28;

  // ---- the drawing, as lh prepares it (notebook 06) ----------------------------------------
  function penFor(strokes) {                         // lh.pen_for
    const pts = strokes.flat();
    if (!pts.length) return MIN_PEN;
    const xs = pts.map(p => p[0]), ys = pts.map(p => p[1]);
    const extent = Math.max(Math.max(...xs) - Math.min(...xs), Math.max(...ys) - Math.min(...ys));
    return Math.max(PEN_WIDTH * extent / 200, MIN_PEN);
  }

  function strokesToImage(strokes) {                 // lh.strokes_to_image: 1 = ink, 0 = paper
    const r = penFor(strokes) / 2, ink = new Uint8Array(SIZE * SIZE);
    for (const stroke of strokes) {
      const segments = stroke.length > 1 ? stroke.slice(1).map((p, i) => [stroke[i], p]) : [[stroke[0], stroke[0]]];
      for (const [[x0, y0], [x1, y1]] of segments) {
        const left = Math.max(Math.floor(Math.min(x0, x1) - r), 0), right = Math.min(Math.ceil(Math.max(x0, x1) + r), SIZE - 1);
        const top = Math.max(Math.floor(Math.min(y0, y1) - r), 0), bottom = Math.min(Math.ceil(Math.max(y0, y1) + r), SIZE - 1);
        const vx = x1 - x0, vy = y1 - y0, length2 = vx * vx + vy * vy;
        for (let py = top; py <= bottom; py++) {
          for (let px = left; px <= right; px++) {
            const dx = px - x0, dy = py - y0;
            const t = length2 > 0 ? Math.min(Math.max((dx * vx + dy * vy) / length2, 0), 1) : 0;
            const ex = dx - t * vx, ey = dy - t * vy;
            if (ex * ex + ey * ey <= r * r) ink[py * SIZE + px] = 1;
          }
        }
      }
    }
    return ink;
  }

  function areaOverlaps(nIn, nOut, side) {           // lh.area_overlaps
    return Array.from({length: nOut}, (_, i) => Array.from({length: nIn}, (_, j) =>
      Math.max(Math.min((i + 1) * side, (j + 1) * BOX) - Math.max(i * side, j * BOX), 0)));
  }

  function roundHalfEven(x) {                        // Python's round()
    const f = Math.floor(x), d = x - f;
    return d > 0.5 ? f + 1 : d < 0.5 ? f : (f % 2 === 0 ? f : f + 1);
  }

  function centerDigit(ink) {                        // lh.center_digit: 28x28 grey levels 0..255
    let top = SIZE, bottom = -1, left = SIZE, right = -1;
    for (let y = 0; y < SIZE; y++) for (let x = 0; x < SIZE; x++) if (ink[y * SIZE + x]) {
      top = Math.min(top, y); bottom = Math.max(bottom, y); left = Math.min(left, x); right = Math.max(right, x);
    }
    const out = new Uint8Array(FIELD * FIELD);
    if (bottom < 0) return out;
    const h = bottom - top + 1, w = right - left + 1, side = Math.max(h, w);
    const newH = Math.ceil(h * BOX / side), newW = Math.ceil(w * BOX / side);  // exact: whole numbers
    const ay = areaOverlaps(h, newH, side), ax = areaOverlaps(w, newW, side);
    const small = [];
    let total = 0, sumY = 0, sumX = 0;
    for (let i = 0; i < newH; i++) {
      small.push([]);
      for (let j = 0; j < newW; j++) {
        let covered = 0;
        for (let y = 0; y < h; y++) {
          if (!ay[i][y]) continue;
          let row = 0;
          for (let x = 0; x < w; x++) if (ax[j][x] && ink[(top + y) * SIZE + left + x]) row += ax[j][x];
          covered += ay[i][y] * row;
        }
        const v = Math.floor((2 * 255 * covered + side * side) / (2 * side * side));
        small[i].push(v); total += v; sumY += i * v; sumX += j * v;
      }
    }
    if (total === 0) return out;
    const oy = Math.min(Math.max(roundHalfEven(FIELD / 2 - sumY / total), 0), FIELD - newH);
    const ox = Math.min(Math.max(roundHalfEven(FIELD / 2 - sumX / total), 0), FIELD - newW);
    for (let i = 0; i < newH; i++) for (let j = 0; j < newW; j++) out[(oy + i) * FIELD + ox + j] = small[i][j];
    return out;
  }

  // torch's antialiased bilinear resize (28 -> 32, in float32 like torch: Math.fround at each step)
  const f = Math.fround;
  function resizeWeights(nIn, nOut) {
    const scale = f(nIn / nOut), support = 1, rows = [];
    for (let i = 0; i < nOut; i++) {
      const center = f(scale * f(i + 0.5));
      const xmin = Math.max(Math.trunc(f(center - support) + 0.5), 0);
      const xsize = Math.min(Math.trunc(f(center + support) + 0.5), nIn) - xmin;
      let ws = [], total = f(0);
      for (let j = 0; j < xsize; j++) {
        const x = Math.abs(f((f(f(j + xmin) - center) + 0.5) * 1));
        const wt = x < 1 ? f(1 - x) : 0;
        ws.push(wt); total = f(total + wt);
      }
      if (total !== 0) ws = ws.map(v => f(v / total));
      rows.push([xmin, ws]);
    }
    return rows;
  }
  function resizePass(a, h, w, rows, alongRows) {    // one direction, like torch: width, then height
    const nOut = rows.length, outH = alongRows ? nOut : h, outW = alongRows ? w : nOut;
    const out = new Float32Array(outH * outW);
    for (let y = 0; y < outH; y++) for (let x = 0; x < outW; x++) {
      const [xmin, ws] = rows[alongRows ? y : x];
      let acc = 0;
      ws.forEach((wt, j) => {
        const v = alongRows ? a[(xmin + j) * w + x] : a[y * w + xmin + j];
        acc = j === 0 ? f(v * wt) : f(acc + f(v * wt));
      });
      out[y * outW + x] = acc;
    }
    return out;
  }
  function digitToInput(digit) {                      // lh.digit_to_input: 32x32 in [-1, 1]
    const rows = resizeWeights(FIELD, 32);
    const big = resizePass(resizePass(digit, FIELD, FIELD, rows, false), FIELD, 32, rows, true);
    return Float64Array.from(big, v => (Math.min(Math.max(roundHalfEven(v), 0), 255) / 255 - 0.5) / 0.5);
  }

  // ---- LeNet-5's forward pass, as notebook 02 writes out a convolution ------------------------
  function conv(x, inC, size, t, bias) {             // every output pixel: a 5x5xinC patch . kernel + bias
    const outC = t.shape[0], k = t.shape[2], n = size - k + 1, out = new Float64Array(outC * n * n);
    for (let o = 0; o < outC; o++) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
      let s = bias.data[o];
      for (let c = 0; c < inC; c++) for (let u = 0; u < k; u++) for (let v = 0; v < k; v++)
        s += x[(c * size + i + u) * size + j + v] * t.data[((o * inC + c) * k + u) * k + v];
      out[(o * n + i) * n + j] = s;
    }
    return out;
  }
  const relu = x => x.map(v => Math.max(v, 0));
  function pool(x, channels, size) {                  // max over each 2x2 square
    const n = size / 2, out = new Float64Array(channels * n * n);
    for (let c = 0; c < channels; c++) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
      const at = (u, v) => x[(c * size + 2 * i + u) * size + 2 * j + v];
      out[(c * n + i) * n + j] = Math.max(at(0, 0), at(0, 1), at(1, 0), at(1, 1));
    }
    return out;
  }
  function linear(x, t, bias) {
    const [outN, inN] = t.shape;
    return Float64Array.from({length: outN}, (_, o) => {
      let s = bias.data[o];
      for (let i = 0; i < inN; i++) s += t.data[o * inN + i] * x[i];
      return s;
    });
  }
  function forward(net, x) {
    const T = net.tensors;
    const maps1 = relu(conv(x, 1, 32, T["conv1.weight"], T["conv1.bias"]));            // 6x28x28
    const maps2 = relu(conv(pool(maps1, 6, 28), 6, 14, T["conv2.weight"], T["conv2.bias"]));  // 16x10x10
    const features = conv(pool(maps2, 16, 10), 16, 5, T["conv3.weight"], T["conv3.bias"]);    // 120
    const logits = linear(relu(linear(features, T["fc1.weight"], T["fc1.bias"])), T["fc2.weight"], T["fc2.bias"]);
    const top = Math.max(...logits), e = logits.map(v => Math.exp(v - top)), sum = e.reduce((a, b) => a + b);
    return {maps1, maps2, probabilities: Array.from(e, v => v / sum)};
  }

  function read(net, strokes) {                       // strokes -> everything the page shows
    const ink = strokesToImage(strokes), digit = centerDigit(ink), input = digitToInput(digit);
    return {ink, digit, input, ...forward(net, input)};
  }

  async function loadNetwork(url) {
    const file = await (await fetch(url)).json();
    for (const t of Object.values(file.tensors)) {
      const bytes = Uint8Array.from(atob(t.data), ch => ch.charCodeAt(0));
      t.data = new Float32Array(bytes.buffer);      // little-endian 4-byte floats, as exported
    }
    return file;
  }

  return {penFor, strokesToImage, centerDigit, digitToInput, forward, read, loadNetwork, SIZE};
})();

// ---- the page -------------------------------------------------------------------------------
(async () => {
  const app = document.getElementById("draw-app");
  if (!app) return;
  const $ = id => document.getElementById(id);
  const canvas = $("draw-canvas"), ctx = canvas.getContext("2d");
  const net = await LeNet5Page.loadNetwork(app.dataset.weights);
  const about = net.about;
  $("draw-run").textContent = `run ${about.run} (${about.recipe} recipe, seed ${about.seed}, ${about.epochs} epochs on ` +
    `${about.train_size.toLocaleString("en")} images, ${about.device}): test accuracy ${(100 * about.test_accuracy).toFixed(2)} %`;

  const bars = $("draw-bars");
  for (let d = 0; d < 10; d++) bars.insertAdjacentHTML("beforeend",
    `<div class="bar"><span>${d}</span><div class="track"><div class="fill" id="bar-${d}"></div></div><span class="pct" id="pct-${d}"></span></div>`);
  const mapGrid = (id, n, size) => {
    const holder = $(id);
    return Array.from({length: n}, () => {
      const c = document.createElement("canvas");
      c.width = c.height = size;
      holder.appendChild(c);
      return c;
    });
  };
  const maps1 = mapGrid("draw-maps1", 6, 28), maps2 = mapGrid("draw-maps2", 16, 10);
  const seen = $("draw-input");

  function paint(target, values, size, offset, n) {   // one map, dark = large
    let top = 0;
    for (let i = 0; i < size * size; i++) top = Math.max(top, values[offset + i]);
    const g = target.getContext("2d"), img = g.createImageData(size, size);
    for (let i = 0; i < size * size; i++) {
      const v = 255 - Math.round(255 * (top > 0 ? values[offset + i] / top : 0));
      img.data.set([v, v, v, 255], 4 * i);
    }
    g.putImageData(img, 0, 0);
  }

  let strokes = [], drawing = false, state = null;
  function update() {
    state = LeNet5Page.read(net, strokes);
    const img = ctx.createImageData(LeNet5Page.SIZE, LeNet5Page.SIZE);
    state.ink.forEach((v, i) => img.data.set(v ? [20, 20, 20, 255] : [255, 255, 255, 255], 4 * i));
    ctx.putImageData(img, 0, 0);
    const p = state.probabilities, best = p.indexOf(Math.max(...p));
    p.forEach((v, d) => {
      $(`bar-${d}`).style.width = `${(100 * v).toFixed(1)}%`;
      $(`bar-${d}`).classList.toggle("best", d === best && strokes.length > 0);
      $(`pct-${d}`).textContent = strokes.length ? `${Math.round(100 * v)} %` : "";
    });
    $("draw-verdict").innerHTML = strokes.length ? `LeNet-5 reads <b>${best}</b> (${Math.round(100 * p[best])} % sure)` : "Draw a digit in the square.";
    maps1.forEach((c, k) => paint(c, state.maps1, 28, k * 784, 6));
    maps2.forEach((c, k) => paint(c, state.maps2, 10, k * 100, 16));
    const input = Float64Array.from(state.input, v => (v + 1) / 2);  // ink (1) dark, paper (-1) white
    paint(seen, input, 32, 0, 1);
    window.drawDigitState = {strokes, input: Array.from(state.input), probabilities: p,
                             maps1: Array.from(state.maps1), maps2: Array.from(state.maps2), digit: Array.from(state.digit)};
  }

  function point(event) {                              // canvas pixels, whatever size it is shown at
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * LeNet5Page.SIZE / box.width, (event.clientY - box.top) * LeNet5Page.SIZE / box.height];
  }
  canvas.addEventListener("pointerdown", e => {
    drawing = true;
    canvas.setPointerCapture(e.pointerId);
    strokes.push([point(e)]);
    update();
  });
  canvas.addEventListener("pointermove", e => {
    if (!drawing) return;
    strokes[strokes.length - 1].push(point(e));
    update();
  });
  const end = () => { drawing = false; };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  $("draw-clear").addEventListener("click", () => { strokes = []; update(); });
  $("draw-full").addEventListener("click", () => document.fullscreenElement ? document.exitFullscreen() : app.requestFullscreen());

  strokes = JSON.parse(app.dataset.example);  // a first digit, read as soon as the page opens
  update();
  window.drawDigitFirstReadingMs = performance.now() - drawStarted;
  app.classList.add("ready");
})();
