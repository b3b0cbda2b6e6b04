"""The live drawing canvas: a plain ``<canvas>`` in a ``gr.HTML`` component, no frontend build.

How it stays live: the drawing lives in the browser (an undo stack of ImageData snapshots). While
you draw, the JavaScript sends the canvas, scaled to the model's resolution and encoded as a PNG
data URL, to a server function (``server.translate_drawing``, Gradio's component-server route, which
skips the queue) and shows the returned image in an ``<img>``. At most one request is in flight;
when a response arrives and the canvas changed meanwhile, the newest state is sent at once
(latest wins), so the output follows the pen during a stroke and settles on the final drawing.

Python talks to it through two props: ``settings`` (model, seed, input kind, size, palette; set
when the model or seed changes) and ``load`` (an image data URL to paint onto the canvas, e.g. an
example). The component's ``value`` is the current drawing as a PNG data URL at the model's
resolution, updated at the end of every stroke, so other events (Compare) can read it.

Label maps are drawn at the model's resolution with integer-aligned rectangles only, so every
pixel holds an exact palette colour; edge and photo drawings are drawn smoothly on a larger
canvas and scaled down when sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

# html_template and css_template are evaluated as JavaScript template literals by gr.HTML:
# neither may contain a backtick or a dollar-brace.
HTML_TEMPLATE = """
<div class="p2p" tabindex="-1">
  <div class="p2p-toolbar">
    <div class="p2p-tools" role="group" aria-label="Drawing tool"></div>
    <label class="p2p-size-label">Size
      <input class="p2p-size" type="range" min="1" max="32" step="1" value="1"
             aria-label="Brush size in pixels of the model's image">
      <span class="p2p-size-value">1 px</span>
    </label>
    <label class="p2p-color-label" hidden>Colour
      <input class="p2p-color" type="color" value="#000000" aria-label="Brush colour">
    </label>
    <div class="p2p-actions">
      <button type="button" class="p2p-btn p2p-undo" title="Undo (Ctrl+Z)" disabled>Undo</button>
      <button type="button" class="p2p-btn p2p-clear" title="Start again">Clear</button>
    </div>
  </div>
  <div class="p2p-palette" role="radiogroup" aria-label="Label colour"></div>
  <div class="p2p-panes">
    <figure class="p2p-pane">
      <div class="p2p-stage">
        <canvas class="p2p-canvas" width="512" height="512" aria-label="Drawing canvas"></canvas>
      </div>
      <figcaption class="p2p-caption">
        <span class="p2p-hint">Draw here: the result follows your pen.</span>
        <a class="p2p-link p2p-dl-drawing" download="drawing.png" href="#">Save drawing</a>
      </figcaption>
    </figure>
    <figure class="p2p-pane">
      <div class="p2p-stage p2p-output-stage">
        <img class="p2p-out" alt="The model's translation of your drawing" hidden>
        <div class="p2p-placeholder">The translation appears here.</div>
      </div>
      <figcaption class="p2p-caption">
        <span class="p2p-status" aria-live="polite"></span>
        <a class="p2p-link p2p-dl-result" download="pix2pix.png" href="#" hidden
           title="The result as a lossless PNG">Download result</a>
      </figcaption>
    </figure>
  </div>
</div>
"""

CSS_TEMPLATE = """
.p2p { display: flex; flex-direction: column; gap: 10px; outline: none;
  color: var(--body-text-color); font-size: var(--text-md); }
.p2p [hidden] { display: none !important; }
.p2p-toolbar { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 16px; }
.p2p-tools, .p2p-actions { display: flex; gap: 6px; }
.p2p-actions { margin-left: auto; }
.p2p-btn { padding: 5px 12px; border-radius: var(--button-small-radius, 6px);
  border: 1px solid var(--border-color-primary);
  background: var(--button-secondary-background-fill); color: var(--button-secondary-text-color);
  font: inherit; font-size: var(--text-sm); cursor: pointer; }
.p2p-btn:hover:not(:disabled) { background: var(--button-secondary-background-fill-hover); }
.p2p-btn:disabled { opacity: 0.45; cursor: default; }
.p2p-btn[aria-pressed="true"] { background: var(--color-accent); border-color: var(--color-accent);
  color: white; }
.p2p-size-label, .p2p-color-label { display: flex; align-items: center; gap: 8px;
  font-size: var(--text-sm); }
.p2p-size { width: 130px; accent-color: var(--color-accent); }
.p2p-size-value { min-width: 3.5em; color: var(--body-text-color-subdued); }
.p2p-color { width: 36px; height: 26px; padding: 0; border: 1px solid var(--border-color-primary);
  background: none; }
.p2p-palette { display: flex; flex-wrap: wrap; gap: 6px; }
.p2p-palette:empty { display: none; }
.p2p-swatch { display: inline-flex; align-items: center; gap: 6px; padding: 3px 9px 3px 4px;
  border-radius: 999px; border: 1px solid var(--border-color-primary);
  background: var(--block-background-fill); color: var(--body-text-color); font: inherit;
  font-size: var(--text-sm); cursor: pointer; }
.p2p-swatch[aria-checked="true"] { outline: 2px solid var(--color-accent); outline-offset: 1px; }
.p2p-chip { width: 18px; height: 18px; border-radius: 50%; border: 1px solid rgba(0,0,0,0.25); }
.p2p-panes { display: grid; grid-template-columns: repeat(2, minmax(0, 560px)); gap: 16px;
  justify-content: center; }
@media (max-width: 720px) { .p2p-panes { grid-template-columns: minmax(0, 1fr); } }
.p2p-pane { margin: 0; display: flex; flex-direction: column; gap: 6px; min-width: 0; }
.p2p-stage { position: relative; width: 100%; aspect-ratio: 1 / 1; overflow: hidden;
  border: 1px solid var(--border-color-primary); border-radius: var(--radius-lg, 8px);
  background: #fff; }
.p2p-output-stage { background: var(--background-fill-secondary); }
.p2p-canvas { display: block; width: 100%; height: 100%; touch-action: none; cursor: crosshair; }
.p2p-canvas.p2p-crisp { image-rendering: pixelated; }
.p2p-out { display: block; width: 100%; height: 100%; object-fit: contain; }
.p2p-placeholder { position: absolute; inset: 0; display: flex; align-items: center;
  justify-content: center; padding: 1em; text-align: center;
  color: var(--body-text-color-subdued); font-size: var(--text-sm); }
.p2p-caption { display: flex; justify-content: space-between; gap: 8px; min-height: 1.4em;
  font-size: var(--text-sm); color: var(--body-text-color-subdued); }
.p2p-status.p2p-error { color: var(--error-text-color, #b91c1c); }
.p2p-link { color: var(--link-text-color, var(--color-accent)); white-space: nowrap; }
"""

# Runs once per page with element, props, server, watch (see gr.HTML's js_on_load).
JS_ON_LOAD = r"""
const q = (s) => element.querySelector(s);
const root = q('.p2p'), canvas = q('.p2p-canvas'), out = q('.p2p-out');
const ctx = canvas.getContext('2d', { willReadFrequently: true });
const placeholder = q('.p2p-placeholder'), statusEl = q('.p2p-status');
const toolsEl = q('.p2p-tools'), paletteEl = q('.p2p-palette');
const sizeInput = q('.p2p-size'), sizeValue = q('.p2p-size-value');
const colorLabel = q('.p2p-color-label'), colorInput = q('.p2p-color');
const undoBtn = q('.p2p-undo'), clearBtn = q('.p2p-clear');
const dlResult = q('.p2p-dl-result'), dlDrawing = q('.p2p-dl-drawing');
const small = document.createElement('canvas');
const smallCtx = small.getContext('2d');

const TOOLS = {
  edges: [['pen', 'Pen'], ['eraser', 'Eraser']],
  labels: [['pen', 'Brush'], ['rect', 'Rectangle'], ['fill', 'Fill']],
  photo: [['pen', 'Brush'], ['rect', 'Rectangle'], ['eraser', 'Eraser']],
};
const SIZES = { edges: [0.5, 8, 0.5, 1], labels: [1, 64, 1, 12], photo: [1, 64, 1, 8] };
const MAX_UNDO = 40;

const st = {
  cfg: null, layout: '', tool: 'pen', color: [0, 0, 0], width: 1, scale: 1, crisp: false,
  undo: [], version: 0, sentVersion: -1, sentKey: '', inflight: false, shown: -1,
  drawing: false, pointer: null, last: null, start: null, before: null, pendingUp: null,
  exported: { version: -1, url: '' },
};
// Read by tests and benchmarks: latencies (pointer-up -> new output decoded, ms), shown updates.
const stats = { latencies: [], shown: [], serverMs: [], errors: 0, sent: 0 };
root.p2pStats = stats;

const rgb = (c) => 'rgb(' + c[0] + ',' + c[1] + ',' + c[2] + ')';
const hex = (c) => '#' + c.map((v) => v.toString(16).padStart(2, '0')).join('');
const background = () => {
  const s = st.cfg;
  if (s && s.kind === 'labels') return s.palette[s.fill || 0];
  return [255, 255, 255];
};

function configure(s) {
  if (!s) return;
  if (!s.ready) {  // keep the drawing and its layout; say why nothing is translated
    const base = st.cfg && st.cfg.kind ? st.cfg : { kind: 'edges', size: 256, palette: null };
    st.cfg = Object.assign({}, base, { model: s.model, seed: s.seed, ready: false });
    layout();
    setStatus(s.message || 'This model is not available.', true);
    return;
  }
  st.cfg = s;
  layout();
  dlResult.download = 'pix2pix-' + s.model + (s.seed == null ? '' : '-seed' + s.seed) + '.png';
  pump();
}

// Size the canvas and build the tools for the model's input kind; keeps the drawing when the
// kind, size and palette stay the same (e.g. switching between variants of one group).
function layout() {
  const s = st.cfg;
  root.dataset.model = s.model;
  root.dataset.kind = s.kind;
  const key = JSON.stringify([s.kind, s.size, s.palette]);
  if (key === st.layout) return;
  st.layout = key;
  st.crisp = s.kind === 'labels';
  st.scale = st.crisp ? 1 : Math.max(1, Math.round(512 / s.size));
  canvas.width = canvas.height = s.size * st.scale;
  canvas.classList.toggle('p2p-crisp', st.crisp);
  small.width = small.height = s.size;
  const [lo, hi, step, def] = SIZES[s.kind];
  sizeInput.min = lo; sizeInput.max = hi; sizeInput.step = step;
  setWidth(s.pen || def);
  buildTools();
  buildPalette();
  st.undo = [];
  undoBtn.disabled = true;
  paint(wipe, false);
  commit();
}

function buildTools() {
  const tools = TOOLS[st.cfg.kind];
  if (!tools.some(([id]) => id === st.tool)) st.tool = 'pen';
  toolsEl.replaceChildren(...tools.map(([id, label]) => {
    const b = document.createElement('button');
    b.type = 'button'; b.className = 'p2p-btn p2p-tool'; b.dataset.tool = id; b.textContent = label;
    b.setAttribute('aria-pressed', String(id === st.tool));
    b.addEventListener('click', () => selectTool(id));
    return b;
  }));
}

function selectTool(id) {
  st.tool = id;
  for (const b of toolsEl.querySelectorAll('button')) {
    b.setAttribute('aria-pressed', String(b.dataset.tool === id));
  }
}

function buildPalette() {
  const s = st.cfg;
  colorLabel.hidden = s.kind !== 'photo';
  if (s.kind !== 'labels') {
    paletteEl.replaceChildren();
    st.color = s.kind === 'photo' ? hexToRgb(colorInput.value) : [0, 0, 0];
    return;
  }
  const names = s.classes || s.palette.map((_, i) => 'class ' + i);
  const first = s.palette.length > 1 ? (s.fill === 1 ? 2 : 1) : 0;
  paletteEl.replaceChildren(...s.palette.map((c, i) => {
    const b = document.createElement('button');
    b.type = 'button'; b.className = 'p2p-swatch'; b.dataset.index = i;
    b.setAttribute('role', 'radio'); b.title = names[i] + ' ' + hex(c);
    const chip = document.createElement('span');
    chip.className = 'p2p-chip'; chip.style.background = rgb(c);
    b.append(chip, document.createTextNode(names[i]));
    b.addEventListener('click', () => selectColor(i));
    return b;
  }));
  selectColor(Math.min(first, s.palette.length - 1));
}

function selectColor(i) {
  st.color = st.cfg.palette[i];
  for (const b of paletteEl.querySelectorAll('.p2p-swatch')) {
    b.setAttribute('aria-checked', String(Number(b.dataset.index) === i));
  }
  if (st.tool === 'eraser') selectTool('pen');
}

function hexToRgb(h) { return [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)); }
function setWidth(w) {
  st.width = Number(w);
  sizeInput.value = w;
  sizeValue.textContent = w + ' px';
}
sizeInput.addEventListener('input', () => setWidth(sizeInput.value));
colorInput.addEventListener('input', () => {
  st.color = hexToRgb(colorInput.value);
  if (st.tool === 'eraser') selectTool('pen');
});

// --- drawing --------------------------------------------------------------------------------
function pos(e) {
  const r = canvas.getBoundingClientRect();
  return [
    (e.clientX - r.left) * canvas.width / r.width,
    (e.clientY - r.top) * canvas.height / r.height,
  ];
}
const ink = () => (st.tool === 'eraser' ? background() : st.color);
function wipe() {
  ctx.fillStyle = rgb(background());
  ctx.fillRect(0, 0, canvas.width, canvas.height);
}

function disc(cx, cy, r) {
  const R = Math.ceil(r);
  for (let dy = -R; dy <= R; dy++) {
    const h2 = r * r - dy * dy;
    if (h2 < 0) continue;
    const half = Math.floor(Math.sqrt(h2) + 1e-6);
    ctx.fillRect(cx - half, cy + dy, 2 * half + 1, 1);
  }
}

function segment(a, b) {
  ctx.fillStyle = ctx.strokeStyle = rgb(ink());
  if (st.crisp) {  // integer-aligned pixels only: exact label colours, no antialiasing
    const r = st.width / 2;
    const n = Math.max(1, Math.ceil(Math.hypot(b[0] - a[0], b[1] - a[1]) / Math.max(1, r / 2)));
    for (let i = 0; i <= n; i++) {
      disc(Math.floor(a[0] + (b[0] - a[0]) * i / n), Math.floor(a[1] + (b[1] - a[1]) * i / n), r);
    }
    return;
  }
  ctx.lineWidth = st.width * st.scale;
  ctx.lineCap = ctx.lineJoin = 'round';
  ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0] + 0.01, b[1]); ctx.stroke();
}

function rect(a, b) {
  ctx.putImageData(st.before, 0, 0);
  ctx.fillStyle = rgb(ink());
  const x0 = Math.floor(Math.min(a[0], b[0])), y0 = Math.floor(Math.min(a[1], b[1]));
  const x1 = Math.floor(Math.max(a[0], b[0])), y1 = Math.floor(Math.max(a[1], b[1]));
  ctx.fillRect(x0, y0, x1 - x0 + 1, y1 - y0 + 1);
}

function flood(p) {
  const w = canvas.width, h = canvas.height;
  const x = Math.floor(p[0]), y = Math.floor(p[1]);
  if (x < 0 || y < 0 || x >= w || y >= h) return;
  const img = ctx.getImageData(0, 0, w, h), d = new Uint32Array(img.data.buffer);
  const c = ink(), target = d[y * w + x];
  const fill = new Uint32Array(new Uint8ClampedArray([c[0], c[1], c[2], 255]).buffer)[0];
  if (target === fill) return;
  const stack = [y * w + x];
  while (stack.length) {
    const i = stack.pop();
    if (d[i] !== target) continue;
    let l = i, r = i;
    const row = i - (i % w);
    while (l > row && d[l - 1] === target) l--;
    while (r < row + w - 1 && d[r + 1] === target) r++;
    for (let j = l; j <= r; j++) {
      d[j] = fill;
      if (j >= w && d[j - w] === target) stack.push(j - w);
      if (j < w * (h - 1) && d[j + w] === target) stack.push(j + w);
    }
  }
  ctx.putImageData(img, 0, 0);
}

function snapshot() {
  st.undo.push(ctx.getImageData(0, 0, canvas.width, canvas.height));
  if (st.undo.length > MAX_UNDO) st.undo.shift();
  undoBtn.disabled = false;
}

// Apply a change to the canvas, optionally undoable, then send it.
function paint(fn, undoable = true) {
  if (undoable) snapshot();
  fn();
  changed();
}

function changed() {
  st.version += 1;
  root.dataset.version = st.version;
  pump();
}

canvas.addEventListener('pointerdown', (e) => {
  if (e.button !== 0 || !st.cfg) return;
  e.preventDefault();
  root.focus({ preventScroll: true });  // for Ctrl+Z
  canvas.setPointerCapture(e.pointerId);
  st.pointer = e.pointerId;
  const p = pos(e);
  snapshot();
  if (st.tool === 'fill') { flood(p); st.pointer = null; changed(); commit(); return; }
  st.drawing = true; st.last = p; st.start = p;
  st.before = st.undo[st.undo.length - 1];
  if (st.tool === 'rect') rect(p, p); else segment(p, p);
  changed();
});

canvas.addEventListener('pointermove', (e) => {
  if (!st.drawing || e.pointerId !== st.pointer) return;
  const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
  for (const ev of (events.length ? events : [e])) {
    const p = pos(ev);
    if (st.tool === 'rect') rect(st.start, p); else segment(st.last, p);
    st.last = p;
  }
  changed();
});

function endStroke(e) {
  if (!st.drawing || e.pointerId !== st.pointer) return;
  st.drawing = false; st.pointer = null; st.before = null;
  if (st.shown >= st.version) stats.latencies.push(0);  // the final drawing is already shown
  else st.pendingUp = { t: performance.now(), version: st.version };
  commit();
  pump();
}
canvas.addEventListener('pointerup', endStroke);
canvas.addEventListener('pointercancel', endStroke);

undoBtn.addEventListener('click', undo);
clearBtn.addEventListener('click', () => {
  paint(wipe);
  commit();
});
root.addEventListener('keydown', (e) => {
  if ((e.ctrlKey || e.metaKey) && !e.shiftKey && e.key.toLowerCase() === 'z') {
    e.preventDefault();
    undo();
  }
});

function undo() {
  const prev = st.undo.pop();
  undoBtn.disabled = st.undo.length === 0;
  if (!prev) return;
  ctx.putImageData(prev, 0, 0);
  changed();
  commit();
}

// --- export and the server round trip ---------------------------------------------------------
function exportPNG() {
  const cached = st.exported;
  if (cached.version === st.version && cached.layout === st.layout) return cached.url;
  let url;
  if (st.scale === 1) {
    url = canvas.toDataURL('image/png');
  } else {
    smallCtx.imageSmoothingEnabled = true;
    smallCtx.imageSmoothingQuality = 'high';
    smallCtx.drawImage(canvas, 0, 0, small.width, small.height);
    url = small.toDataURL('image/png');
  }
  st.exported = { version: st.version, layout: st.layout, url };
  return url;
}

// The drawing as the component's value (read by Python, e.g. Compare), set when a stroke ends.
function commit() {
  const url = exportPNG();
  props.value = url;
  dlDrawing.href = url;
}

function setStatus(text, error = false) {
  statusEl.textContent = text;
  statusEl.classList.toggle('p2p-error', error);
}

async function pump() {
  const s = st.cfg;
  if (!s || !s.ready || st.inflight) return;
  const key = s.model + '|' + s.seed;
  if (st.sentVersion === st.version && st.sentKey === key) return;
  const version = st.version;
  st.sentVersion = version; st.sentKey = key; st.inflight = true;
  stats.sent += 1;
  let res;
  try {
    res = await server.translate_drawing({ image: exportPNG(), model: s.model, seed: s.seed });
  } catch (err) {
    res = { error: 'No answer from the server (' + ((err && err.message) || err) + ')' };
  }
  if (res && res.image) {
    out.src = res.image;
    try { await out.decode(); } catch (err) { /* shown anyway once loaded */ }
    const now = performance.now();
    out.hidden = false; placeholder.hidden = true;
    out.dataset.version = version;
    dlResult.hidden = false;
    if (stats.shown.length > 5000) { stats.shown.splice(0, 2500); stats.serverMs.splice(0, 2500); }
    stats.shown.push({ t: now, version, during: st.drawing });
    stats.serverMs.push(res.ms);
    if (st.pendingUp && version >= st.pendingUp.version) {
      stats.latencies.push(now - st.pendingUp.t);
      st.pendingUp = null;
    }
    st.shown = version;
    root.dataset.shown = version;
    setStatus(res.label + ' · ' + Math.round(res.ms) + ' ms');
  } else {
    stats.errors += 1;
    setStatus((res && res.error) || 'Translation failed.', true);
  }
  st.inflight = false;
  pump();  // latest wins: if the drawing changed while waiting, send the newest state now
}

// The live updates are JPEGs (small and quick); the download asks for the same result as a PNG.
dlResult.addEventListener('click', async (e) => {
  e.preventDefault();
  const s = st.cfg;
  if (!s || !s.ready) return;
  const res = await server.translate_drawing(
    { image: exportPNG(), model: s.model, seed: s.seed, format: 'png' });
  if (!res || !res.image) { setStatus((res && res.error) || 'Download failed.', true); return; }
  const a = document.createElement('a');
  a.href = res.image;
  a.download = dlResult.download;
  a.click();
});

// Paint an image (an example, a loaded drawing) onto the canvas, letterboxed on the background.
function loadImage(url) {
  if (!url) return;
  const img = new Image();
  img.onload = () => {
    paint(() => {
      wipe();
      const k = Math.min(canvas.width / img.naturalWidth, canvas.height / img.naturalHeight);
      const w = Math.round(img.naturalWidth * k), h = Math.round(img.naturalHeight * k);
      const x = Math.floor((canvas.width - w) / 2), y = Math.floor((canvas.height - h) / 2);
      ctx.imageSmoothingEnabled = !st.crisp;
      ctx.drawImage(img, x, y, w, h);
    });
    commit();
  };
  img.src = url;
}

watch('settings', () => configure(props.settings));
watch('load', () => loadImage(props.load && props.load.url));
configure(props.settings);
commit();
"""


def drawing_canvas(
    settings: dict[str, Any], translate: Callable[[Any], dict], **kwargs: Any
) -> gr.HTML:
    """The canvas component; ``translate(payload) -> dict`` answers ``server.translate_drawing``."""

    # gr.HTML exposes server functions to JavaScript by their __name__ (and marks them, which a
    # bound method does not allow), hence this plain function.
    def translate_drawing(payload: Any) -> dict:
        return translate(payload)

    return gr.HTML(
        value="",
        html_template=HTML_TEMPLATE,
        css_template=CSS_TEMPLATE,
        js_on_load=JS_ON_LOAD,
        apply_default_css=False,
        server_functions=[translate_drawing],
        settings=settings,
        load=None,
        **kwargs,
    )
