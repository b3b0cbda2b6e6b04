// pix2pix studio's live drawing canvas: a plain <canvas> (canvas.html, canvas.css), no build step.
//
// One function, pix2pixCanvas(element, props, server, watch), used in two places:
// - the Gradio app, as gr.HTML's js_on_load (pix2pix/app/canvas.py appends the call); `server`
//   has translate_drawing (Gradio's component-server route, which skips the queue);
// - the static site (pix2pix/site.py), with server = null: the model always runs in the browser.
//
// Where the model runs, per model: in the visitor's browser (onnxruntime-web in a worker,
// runner.js; WebGPU on a real GPU adapter, otherwise WASM, threaded when the page is cross-origin
// isolated) or on the server. The first browser run is timed against one server round trip and
// the faster wins; while the browser session loads, or when it cannot load, the server answers.
// Seeds other than "fixed" (dropout noise) always use the server: the exported graph has no dropout.
//
// The drawing lives here (an undo stack of ImageData snapshots). At most one translation is in
// flight; when it returns and the drawing changed meanwhile, the newest state goes next (latest
// wins), so the output follows the pen during a stroke and settles on the final drawing. A blank
// drawing (every pixel the background) is never translated: the placeholder shows instead.
//
// Python talks to it through two props: `settings` (model, seed, input kind, size, palette, hints,
// when the browser can run it, `browser`: {onnx, ort, worker} URLs) and `load` (an image data URL to
// paint onto the canvas, e.g. an example). `props.value` is the current drawing as a PNG data URL
// at the model's resolution, set at the end of every stroke, so other events (Compare) can read it.
//
// Label maps are drawn at the model's resolution with integer-aligned rectangles only, so every
// pixel holds an exact palette colour; edge and photo drawings are drawn smoothly on a larger canvas
// and scaled down for the model.
//
// Models that take colour hints (settings.hints: line art whose task says so) get a colour pen:
// round dabs of a chosen colour drawn into the same image, under the black lines, so the drawing
// sent to the model is the line art with its dabs; undo and the eraser treat them as any stroke.
//
// Input is Pointer Events (mouse, pen, touch). One pointer draws at a time. A pen outranks
// touches: while it is down, and for PALM_MS after it was last seen (touching or hovering), touches
// draw nothing (a palm resting on the glass). A second finger makes a gesture (pinch, two-finger
// tap): it draws nothing, and takes back the first finger's stroke if that began less than
// GESTURE_MS before (the fingers of one gesture land together); no touch draws again until every
// finger has lifted. A pen's eraser end erases. A cancelled pointer (the system took it, e.g. as
// a palm) takes its stroke back, as if it had not been drawn.
/* exported pix2pixCanvas */
/* global p2pEngine */

function pix2pixCanvas(element, props, server, watch) {
  'use strict';
  const q = (s) => element.querySelector(s);
  const root = q('.p2p'), canvas = q('.p2p-canvas'), out = q('.p2p-out');
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const outCtx = out.getContext('2d');
  const placeholder = q('.p2p-placeholder'), statusEl = q('.p2p-status');
  const toolsEl = q('.p2p-tools'), paletteEl = q('.p2p-palette');
  const sizeInput = q('.p2p-size'), sizeValue = q('.p2p-size-value');
  const colorLabel = q('.p2p-color-label'), colorInput = q('.p2p-color');
  const undoBtn = q('.p2p-undo'), clearBtn = q('.p2p-clear');
  const dlResult = q('.p2p-dl-result'), dlDrawing = q('.p2p-dl-drawing');
  const small = document.createElement('canvas');
  const smallCtx = small.getContext('2d', { willReadFrequently: true });
  const placeholderText = placeholder.textContent;

  const TOOLS = {
    edges: [['pen', 'Pen'], ['eraser', 'Eraser']],
    labels: [['pen', 'Brush'], ['rect', 'Rectangle'], ['fill', 'Fill']],
    photo: [['pen', 'Brush'], ['rect', 'Rectangle'], ['eraser', 'Eraser']],
  };
  const DAB_TOOL = ['dab', 'Colour pen'];  // for models that take colour hints
  // [min, max, step, default] widths in the model's pixels; the colour pen's are at 256 px
  // (scaled with the model's size): dabs of radius 3 to 12, as the hints the model learnt from.
  const SIZES = {
    edges: [0.5, 8, 0.5, 1], labels: [1, 64, 1, 12], photo: [1, 64, 1, 8], dab: [6, 24, 1, 12],
  };
  // The colour pen's swatches: OpenMoji's palette (the colours the line-art models learnt).
  const HINT_COLOURS = [
    ['red', '#d22f27'], ['orange', '#f4aa41'], ['yellow', '#fcea2b'], ['green', '#5c9e31'],
    ['blue', '#1e50a0'], ['light blue', '#61b2e4'], ['purple', '#b399c8'], ['pink', '#e67a94'],
    ['brown', '#a57939'], ['skin', '#debb90'], ['grey', '#9b9b9a'],
  ];
  const MAX_UNDO = 40;
  const PALM_MS = 500;  // touches this soon after a pen was seen are a resting palm
  const GESTURE_MS = 250;  // a second finger this soon after the first: one gesture, no stroke

  const st = {
    cfg: null, layout: '', tool: 'pen', color: [0, 0, 0], scale: 1, crisp: false, hints: false,
    widths: { line: 1, dab: 12 },  // the pen's (and eraser's) width, the colour pen's
    dabColor: hexToRgb(HINT_COLOURS[0][1]),
    undo: [], version: 0, sentVersion: -1, sentKey: '', shown: -1,
    inflight: false, inflightVersion: -1,  // where the drawing `inflightVersion` is being run
    // The stroke being drawn: {id (pointerId), type (pointerType), tool, start, last, before (the
    // drawing before it: its undo snapshot), at (when it began), lines (colour pen: line pixels)}.
    stroke: null, pendingUp: null,
    touches: new Set(), gesture: false, penSeen: -Infinity,  // see the header: who may draw
    exported: { version: -1, url: '' }, pixels: { version: -1, layout: '', data: null },
    result: 'none',  // what the output pane holds: none | browser | server
  };
  // Read by tests and benchmarks: latencies (pointer-up -> new output shown, ms), shown updates,
  // requests sent to the server, and per model where it runs and why.
  const stats = {
    latencies: [], shown: [], serverMs: [], browserMs: [], errors: 0, sent: 0, serverCalls: 0,
    supersedes: 0,  // pointer-ups that asked the worker to drop a run of an older drawing
    rollbacks: 0,  // strokes taken back: cancelled pointers, palms, gestures' first fingers
    choice: {}, engineError: null,
    marks: null,  // when each start-up phase ended (engine.js)
  };
  root.p2pStats = stats;

  const rgb = (c) => 'rgb(' + c[0] + ',' + c[1] + ',' + c[2] + ')';
  const hex = (c) => '#' + c.map((v) => v.toString(16).padStart(2, '0')).join('');
  const background = () => {
    const s = st.cfg;
    if (s && s.kind === 'labels') return s.palette[s.fill || 0];
    return [255, 255, 255];
  };

  // --- the browser runtime (engine.js): shared with the page's early start, if any -----------
  const engine = p2pEngine();
  const mark = (phase) => engine.mark(phase);
  stats.marks = engine.marks;
  mark('canvas');
  engine.onfail = (message) => {
    stats.engineError = message;
    console.warn('pix2pix: the model cannot run in this browser (' + message + '); using the server');
  };
  if (engine.failed) engine.onfail(engine.failed);

  // Where `model` runs now: 'browser', 'server', or 'wait' (no server and the browser not ready).
  function route(s) {
    const choice = stats.choice[s.model];
    if (s.seed != null && server) return 'server';  // dropout noise: the server's job
    if (choice && choice.where === 'browser') return 'browser';
    return server ? 'server' : 'wait';
  }

  const versus = (b, v) => 'browser ' + Math.round(b) + ' ms vs server ' + Math.round(v) + ' ms';

  // Pick where a model runs: load it in the browser, time a run, time one server round trip on the
  // same drawing, keep the faster (and remember it). Without a server, the browser is the only place.
  async function decide(s) {
    const model = s.model;
    if (stats.choice[model]) return;
    stats.choice[model] = { where: 'pending' };
    let where = 'server', browserMs = null, serverMs = null, info = null, reason = '';
    const memory = server ? engine.recall(model, s.browser.onnx) : null;
    let remembered = false;
    if (memory && memory.where === 'server') {  // no download, no session: the server answers
      ({ browserMs, serverMs } = memory);
      remembered = true;
    } else {
      try {
        info = await engine.load(model, s.browser.onnx, s.size, s.browser.stages);
        browserMs = (await engine.time(model, s.size)).ms;  // also warms the session up
        if (memory) {  // the reason quotes the measurement that made the choice
          ({ browserMs, serverMs } = memory);
          where = 'browser';
          remembered = true;
        } else {
          if (server && s.ready) {
            const t1 = performance.now();
            stats.serverCalls += 1;
            const res = await server.translate_drawing({ image: exportPNG(), model, seed: null });
            serverMs = res && res.image ? performance.now() - t1 : null;
            mark('roundtrip');
          }
          where = serverMs === null || browserMs <= serverMs ? 'browser' : 'server';
        }
      } catch (err) {
        reason = 'the browser could not run it: ' + ((err && err.message) || err);
        console.warn('pix2pix: ' + model + ' stays on the server (' + reason + ')');
        if (!server) setStatus('This model cannot run in your browser (' + reason + ').', true);
      }
    }
    if (!reason) {
      reason = !server ? 'this page has no server: the model runs in your browser'
        : serverMs === null ? 'no server round trip to compare with' : versus(browserMs, serverMs);
    }
    if (remembered) {
      reason += ', measured ' + new Date(memory.at).toISOString().slice(0, 10)
        + ' and remembered by this browser (measured again when the model file or this device'
        + ' changes)';
    }
    stats.choice[model] = {
      where, browserMs, serverMs, reason, remembered,
      backend: info && info.backend, threads: info && info.threads, loadMs: info && info.ms,
      downloadMs: info && info.downloadMs, sessionMs: info && info.sessionMs,
      downloads: info && info.downloads,
    };
    if (!remembered && server && serverMs !== null && browserMs !== null
        && engine.remember(model, s.browser.onnx, stats.choice[model])) {
      stats.choice[model].reason += '; this browser remembers the choice for ' + engine.memoryDays
        + ' days (measured again when the model file or this device changes)';
    }
    mark('choice');
    if (st.cfg && st.cfg.model === model) {
      root.dataset.where = where;
      if (st.result === 'none' && !statusEl.classList.contains('p2p-error')) {
        setStatus(readyText(st.cfg), false, whyHere(model));
      }
      if (where === 'browser' && st.result === 'server') st.sentKey = '';  // redo it here
      pump();
    }
  }

  function configure(s) {
    if (!s) return;
    engine.show(s.model);  // the worker releases the sessions of models no longer shown
    if (!s.ready && !s.browser) {  // keep the drawing and its layout; say why nothing is translated
      const base = st.cfg && st.cfg.kind ? st.cfg : { kind: 'edges', size: 256, palette: null };
      st.cfg = Object.assign({}, base, { model: s.model, seed: s.seed, ready: false });
      layout();
      setStatus(s.message || 'This model is not available.', true);
      return;
    }
    st.cfg = s;
    layout();
    dlResult.download = 'pix2pix-' + s.model + (s.seed == null ? '' : '-seed' + s.seed) + '.png';
    const choice = stats.choice[s.model];
    root.dataset.where = choice ? choice.where : (s.browser ? 'pending' : 'server');
    if (s.browser) {
      engine.start(s.browser);
      if (engine.failed) stats.choice[s.model] = stats.choice[s.model] || {
        where: 'server', reason: 'the browser could not run it: ' + engine.failed,
      };
      else decide(s);
    }
    pump();
  }

  // Size the canvas and build the tools for the model's input kind; keeps the drawing when the
  // kind, size and palette stay the same (e.g. switching between variants of one group, or
  // between line-art models with and without colour hints: only the tools change then).
  function layout() {
    const s = st.cfg;
    const hints = s.kind === 'edges' && Boolean(s.hints);
    root.dataset.model = s.model;
    root.dataset.kind = s.kind;
    root.dataset.hints = String(hints);
    const key = JSON.stringify([s.kind, s.size, s.palette]);
    const fresh = key !== st.layout;
    if (fresh) {
      st.layout = key;
      st.crisp = s.kind === 'labels';
      st.scale = st.crisp ? 1 : Math.max(1, Math.round(512 / s.size));
      canvas.width = canvas.height = s.size * st.scale;
      canvas.classList.toggle('p2p-crisp', st.crisp);
      out.classList.toggle('p2p-crisp', s.size < 256);
      small.width = small.height = s.size;
      st.widths = { line: s.pen || SIZES[s.kind][3], dab: sizes('dab')[3] };
    }
    if (fresh || hints !== st.hints) {
      st.hints = hints;
      buildTools();
      buildPalette();
    }
    if (!fresh) return;
    st.undo = [];
    undoBtn.disabled = true;
    paint(wipe, false);
    commit();
  }

  // The size slider's [min, max, step, default] for a tool, in the model's pixels.
  function sizes(tool) {
    if (tool !== 'dab') return SIZES[st.cfg.kind];
    const k = st.cfg.size / 256;
    return SIZES.dab.map((v, i) => (i === 2 ? v : Math.max(1, Math.round(v * k))));
  }
  const widthKey = (tool) => (tool === 'dab' ? 'dab' : 'line');  // the eraser shares the pen's

  function buildTools() {
    const tools = TOOLS[st.cfg.kind].slice();
    if (st.hints) tools.splice(1, 0, DAB_TOOL);  // beside the pen
    if (!tools.some(([id]) => id === st.tool)) st.tool = 'pen';
    toolsEl.replaceChildren(...tools.map(([id, label]) => {
      const b = document.createElement('button');
      b.type = 'button'; b.className = 'p2p-btn p2p-tool'; b.dataset.tool = id; b.textContent = label;
      if (id === 'dab') b.title = 'Dab a colour inside a shape: the shape takes that colour';
      b.addEventListener('click', () => selectTool(id));
      return b;
    }));
    selectTool(st.tool);
  }

  // Select a tool; the size slider shows (and sets) that tool's width.
  function selectTool(id) {
    st.tool = id;
    for (const b of toolsEl.querySelectorAll('button')) {
      b.setAttribute('aria-pressed', String(b.dataset.tool === id));
    }
    // The colour pen's chosen swatch stays marked, but as a resting choice while another tool
    // draws: it only looks active when the colour pen is the tool in hand.
    paletteEl.dataset.resting = String(Boolean(st.hints) && id !== 'dab');
    const [lo, hi, step] = sizes(id);
    sizeInput.min = lo; sizeInput.max = hi; sizeInput.step = step;
    setWidth(st.widths[widthKey(id)]);
  }

  // The colour choices under the toolbar: the label palette (label maps), the colour pen's
  // swatches (models that take hints), or none; the colour picker for photos and hints.
  function buildPalette() {
    const s = st.cfg;
    colorLabel.hidden = s.kind !== 'photo' && !st.hints;
    if (st.hints) {
      paletteEl.setAttribute('aria-label', 'Colour pen colour');
      colorInput.setAttribute('aria-label', 'Colour pen colour');
      paletteEl.replaceChildren(...HINT_COLOURS.map(([name, value]) => {
        const c = hexToRgb(value);
        const b = swatch(name, c, false, () => selectDab(c));
        b.classList.add('p2p-dab-swatch');
        return b;
      }));
      selectDab(st.dabColor, false);
      return;
    }
    paletteEl.setAttribute('aria-label', 'Label colour');
    colorInput.setAttribute('aria-label', 'Brush colour');
    if (s.kind !== 'labels') {
      paletteEl.replaceChildren();
      st.color = s.kind === 'photo' ? hexToRgb(colorInput.value) : [0, 0, 0];
      return;
    }
    const names = s.classes || s.palette.map((_, i) => 'class ' + i);
    const first = s.palette.length > 1 ? (s.fill === 1 ? 2 : 1) : 0;
    paletteEl.replaceChildren(...s.palette.map(
      (c, i) => swatch(names[i], c, true, () => selectColor(c))));
    selectColor(s.palette[Math.min(first, s.palette.length - 1)]);
  }

  // One swatch (a radio button): a round chip of `c`, with the name beside it or as its label.
  function swatch(name, c, named, pick) {
    const b = document.createElement('button');
    b.type = 'button'; b.className = 'p2p-swatch'; b.dataset.color = hex(c);
    b.setAttribute('role', 'radio'); b.title = name + ' ' + hex(c);
    const chip = document.createElement('span');
    chip.className = 'p2p-chip'; chip.style.background = rgb(c);
    b.append(chip);
    if (named) b.append(document.createTextNode(name)); else b.setAttribute('aria-label', name);
    b.addEventListener('click', pick);
    return b;
  }

  // Mark the swatch of colour `c` as chosen (none, for a colour from the picker).
  function markSwatch(c) {
    for (const b of paletteEl.querySelectorAll('.p2p-swatch')) {
      b.setAttribute('aria-checked', String(b.dataset.color === hex(c)));
    }
  }

  function selectColor(c) {  // a label colour
    st.color = c;
    markSwatch(c);
    if (st.tool === 'eraser') selectTool('pen');
  }

  function selectDab(c, pickTool = true) {  // the colour pen's colour; choosing one picks the pen
    st.dabColor = c;
    colorInput.value = hex(c);
    markSwatch(c);
    if (pickTool) selectTool('dab');
  }

  function hexToRgb(h) { return [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)); }
  function setWidth(w) {
    st.widths[widthKey(st.tool)] = Number(w);
    sizeInput.value = w;
    sizeValue.textContent = w + ' px';
  }
  sizeInput.addEventListener('input', () => setWidth(sizeInput.value));
  colorInput.addEventListener('input', () => {
    if (st.hints) { selectDab(hexToRgb(colorInput.value)); return; }
    st.color = hexToRgb(colorInput.value);
    if (st.tool === 'eraser') selectTool('pen');
  });

  // --- drawing ------------------------------------------------------------------------------
  function pos(e) {
    const r = canvas.getBoundingClientRect();
    return [
      (e.clientX - r.left) * canvas.width / r.width,
      (e.clientY - r.top) * canvas.height / r.height,
    ];
  }
  function ink(tool) {
    if (tool === 'eraser') return background();
    return tool === 'dab' ? st.dabColor : st.color;
  }
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
    const s = st.stroke, width = st.widths[widthKey(s.tool)];
    ctx.fillStyle = ctx.strokeStyle = rgb(ink(s.tool));
    if (st.crisp) {  // integer-aligned pixels only: exact label colours, no antialiasing
      const r = width / 2;
      const n = Math.max(1, Math.ceil(Math.hypot(b[0] - a[0], b[1] - a[1]) / Math.max(1, r / 2)));
      for (let i = 0; i <= n; i++) {
        disc(Math.floor(a[0] + (b[0] - a[0]) * i / n), Math.floor(a[1] + (b[1] - a[1]) * i / n), r);
      }
      return;
    }
    ctx.lineWidth = width * st.scale;
    ctx.lineCap = ctx.lineJoin = 'round';
    ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0] + 0.01, b[1]); ctx.stroke();
    if (s.lines) keepLines(a, b, ctx.lineWidth / 2 + 2);
  }

  // The drawing's lines in `image` (ImageData), one byte a pixel: dark and without colour (a
  // dark colour dab, e.g. brown, is not a line).
  function lineMask(image) {
    const d = image.data, mask = new Uint8Array(d.length / 4);
    for (let j = 0, i = 0; j < mask.length; j++, i += 4) {
      const hi = Math.max(d[i], d[i + 1], d[i + 2]), lo = Math.min(d[i], d[i + 1], d[i + 2]);
      mask[j] = hi < 128 && hi - lo < 48 ? 1 : 0;
    }
    return mask;
  }

  // Put back the lines under the colour pen's segment a-b (within r of it): a dab never covers
  // a line, like the hints the model learnt from (train/hints.py), so a dab that strays over a
  // shape's outline leaves the shape closed.
  function keepLines(a, b, r) {
    const s = st.stroke, w = canvas.width, old = s.before.data;
    const x0 = Math.max(0, Math.floor(Math.min(a[0], b[0]) - r));
    const y0 = Math.max(0, Math.floor(Math.min(a[1], b[1]) - r));
    const x1 = Math.min(w, Math.ceil(Math.max(a[0], b[0]) + r));
    const y1 = Math.min(canvas.height, Math.ceil(Math.max(a[1], b[1]) + r));
    if (x1 <= x0 || y1 <= y0) return;
    const box = ctx.getImageData(x0, y0, x1 - x0, y1 - y0), d = box.data;
    for (let y = y0, k = 0; y < y1; y++) {
      for (let x = x0; x < x1; x++, k += 4) {
        const i = y * w + x;
        if (s.lines[i]) d.set(old.subarray(4 * i, 4 * i + 4), k);
      }
    }
    ctx.putImageData(box, x0, y0);
  }

  function rect(a, b) {
    ctx.putImageData(st.stroke.before, 0, 0);
    ctx.fillStyle = rgb(ink(st.stroke.tool));
    const x0 = Math.floor(Math.min(a[0], b[0])), y0 = Math.floor(Math.min(a[1], b[1]));
    const x1 = Math.floor(Math.max(a[0], b[0])), y1 = Math.floor(Math.max(a[1], b[1]));
    ctx.fillRect(x0, y0, x1 - x0 + 1, y1 - y0 + 1);
  }

  function flood(p, tool) {
    const w = canvas.width, h = canvas.height;
    const x = Math.floor(p[0]), y = Math.floor(p[1]);
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    const img = ctx.getImageData(0, 0, w, h), d = new Uint32Array(img.data.buffer);
    const c = ink(tool), target = d[y * w + x];
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

  // Apply a change to the canvas, optionally undoable, then translate it.
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

  // --- pointers: who draws (see the header) ---------------------------------------------------
  // The tool a pointer draws with, or null: the selected tool for the primary button (a mouse's
  // left button, a pen's tip, a finger); the eraser for a pen's eraser end (button 5, buttons 32
  // in Pointer Events); other buttons (right, middle, a pen's barrel button) draw nothing.
  function toolFor(e) {
    if (e.pointerType === 'pen' && (e.button === 5 || (e.buttons & 32))) return 'eraser';
    return e.button === 0 ? st.tool : null;
  }

  // Whether a pointer that lands now may draw. A pen landing on a touch stroke takes it back:
  // the palm came down first.
  function admit(e, now) {
    const s = st.stroke;
    if (e.pointerType !== 'touch') {
      if (s && s.type === 'touch' && e.pointerType === 'pen') rollback();
      return !st.stroke;
    }
    if (st.touches.size > 1 || st.gesture) {
      st.gesture = true;
      if (s && s.type === 'touch' && now - s.at < GESTURE_MS) rollback();
      return false;
    }
    return !s && now - st.penSeen > PALM_MS;
  }

  // A pen was seen (touching, hovering or leaving): touches are a palm for PALM_MS from now.
  function seen(e) {
    if (e.pointerType === 'pen') st.penSeen = performance.now();
  }

  // A pointer is gone (lifted or cancelled): forget its touch; a gesture ends with its last finger.
  function release(e) {
    seen(e);
    st.touches.delete(e.pointerId);
    if (st.touches.size === 0) st.gesture = false;
  }

  const ours = (e) => st.stroke !== null && e.pointerId === st.stroke.id;

  canvas.addEventListener('pointerdown', (e) => {
    const now = performance.now();
    seen(e);
    if (e.pointerType === 'touch') {
      // The first finger of a new touch: any finger still remembered was lost without a
      // pointerup (a capture taken away), so a stale gesture cannot block drawing for good.
      if (e.isPrimary) { st.touches.clear(); st.gesture = false; }
      st.touches.add(e.pointerId);
    }
    const tool = toolFor(e);
    if (!st.cfg || !tool || !admit(e, now)) return;
    e.preventDefault();
    root.focus({ preventScroll: true });  // for Ctrl+Z
    canvas.setPointerCapture(e.pointerId);
    const p = pos(e);
    snapshot();
    if (tool === 'fill') { flood(p, tool); changed(); commit(); return; }
    const before = st.undo[st.undo.length - 1];
    st.stroke = {
      id: e.pointerId, type: e.pointerType, tool, start: p, last: p, before, at: now,
      lines: tool === 'dab' && !st.crisp ? lineMask(before) : null,
    };
    if (tool === 'rect') rect(p, p); else segment(p, p);
    changed();
  });

  canvas.addEventListener('pointermove', (e) => {
    seen(e);  // a pen hovering over the glass counts: the hand is about to rest on it
    const s = st.stroke;
    if (!s || e.pointerId !== s.id) return;
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
    for (const ev of (events.length ? events : [e])) {
      const p = pos(ev);
      if (s.tool === 'rect') rect(s.start, p); else segment(s.last, p);
      s.last = p;
    }
    changed();
  });
  canvas.addEventListener('pointerleave', seen);

  function endStroke() {
    st.stroke = null;
    if (st.shown >= st.version) stats.latencies.push(0);  // the final drawing is already shown
    else st.pendingUp = { t: performance.now(), version: st.version };
    // A browser run of an older drawing would delay the final one: drop it at its next stage.
    if (st.inflight === 'browser' && st.inflightVersion < st.version && engine.supersede()) {
      stats.supersedes += 1;
    }
    pump();  // first: the final drawing's run starts before its PNG is encoded
    commit();
  }

  // Take back the stroke being drawn (its pointer was cancelled, it was a palm, or the first
  // finger of a gesture): the drawing and the undo stack are as before it began, and the output
  // follows (that drawing is translated again, as after an undo).
  function rollback() {
    const s = st.stroke;
    st.stroke = null;
    ctx.putImageData(s.before, 0, 0);
    if (st.undo[st.undo.length - 1] === s.before) st.undo.pop();
    undoBtn.disabled = st.undo.length === 0;
    stats.rollbacks += 1;
    changed();
  }

  canvas.addEventListener('pointerup', (e) => {
    release(e);
    if (ours(e)) endStroke();
  });
  canvas.addEventListener('pointercancel', (e) => {
    release(e);
    if (ours(e)) rollback();
  });

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

  // --- the drawing at the model's resolution ------------------------------------------------
  function modelPixels() {
    const cached = st.pixels;
    if (cached.version === st.version && cached.layout === st.layout) return cached.data;
    let data;
    if (st.scale === 1) {
      data = ctx.getImageData(0, 0, canvas.width, canvas.height);
    } else {
      smallCtx.imageSmoothingEnabled = true;
      smallCtx.imageSmoothingQuality = 'high';
      smallCtx.drawImage(canvas, 0, 0, small.width, small.height);
      data = smallCtx.getImageData(0, 0, small.width, small.height);
    }
    st.pixels = { version: st.version, layout: st.layout, data };
    return data;
  }

  // Nothing drawn: every pixel is the background colour.
  function isBlank() {
    const d = modelPixels().data, [r, g, b] = background();
    for (let i = 0; i < d.length; i += 4) {
      if (d[i] !== r || d[i + 1] !== g || d[i + 2] !== b) return false;
    }
    return true;
  }

  function exportPNG() {
    const cached = st.exported;
    if (cached.version === st.version && cached.layout === st.layout) return cached.url;
    let url;
    if (st.scale === 1) {
      url = canvas.toDataURL('image/png');
    } else {
      modelPixels();  // draws the scaled-down drawing into `small`
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

  function setStatus(text, error = false, why = '') {
    statusEl.textContent = text;
    statusEl.title = why;  // the tooltip: why the model runs where it does
    statusEl.classList.toggle('p2p-error', error);
  }

  // The label before the first output: where the model will run, or that this is being found out.
  function readyText(s) {
    if (!s || !s.browser) return '';
    const c = stats.choice[s.model];
    if (!c || c.where === 'pending') {
      return server ? 'Measuring whether your browser or the server is faster…'
        : 'Loading the model into your browser…';
    }
    if (c.where === 'server') return 'Ready · draw to translate on the server';
    const ms = c.browserMs != null ? ' · ' + Math.round(c.browserMs) + ' ms a run' : '';
    return 'Ready · draw to translate in your browser · ' + runtimeText(c.backend, c.threads) + ms;
  }

  // The browser runtime in words: 'WASM · 2 threads', 'WASM · 1 thread', 'WEBGPU'.
  function runtimeText(backend, threads) {
    const name = (backend || 'wasm').toUpperCase();
    if (name !== 'WASM' || !threads) return name;
    return name + ' · ' + threads + (threads > 1 ? ' threads' : ' thread');
  }

  // Why `model` runs where it does, in words (the measurement behind the choice), or ''.
  function whyHere(model) {
    const c = stats.choice[model];
    const browser = st.cfg && st.cfg.browser;
    if (!server && browser && (!c || c.where === 'pending')) {
      return 'Loading the model into your browser.';  // the static site: no server to compare
    }
    if (!c) return browser ? 'Not measured yet: the server answers.' : '';
    if (c.where === 'pending') return 'Measuring whether your browser or the server is faster.';
    return c.reason ? 'Why here: ' + c.reason + '.' : '';
  }

  // --- translation: latest wins --------------------------------------------------------------
  function showPlaceholder(version) {
    out.hidden = true; placeholder.hidden = false; dlResult.hidden = true;
    placeholder.textContent = placeholderText;
    st.result = 'none';
    st.shown = -1;
    root.dataset.shown = -1;
    root.dataset.settled = version;
    setStatus(readyText(st.cfg), false, st.cfg ? whyHere(st.cfg.model) : '');
  }

  function showResult(version, draw, where, label, why = '') {
    draw();
    const now = performance.now();
    out.hidden = false; placeholder.hidden = true; dlResult.hidden = false;
    st.result = where;
    if (stats.shown.length > 5000) stats.shown.splice(0, 2500);
    stats.shown.push({ t: now, version, during: st.stroke !== null, where });
    mark('output');
    if (st.pendingUp && version >= st.pendingUp.version) {
      stats.latencies.push(now - st.pendingUp.t);
      st.pendingUp = null;
    }
    st.shown = version;
    root.dataset.shown = version;
    root.dataset.settled = version;
    root.dataset.result = where;
    setStatus(label, false, why);
  }

  async function viaBrowser(s, version) {
    const res = await engine.run(s.model, modelPixels());
    if (res.superseded) return;  // dropped for a newer drawing, which pump() sends next
    stats.browserMs.push(res.ms);
    if (stats.browserMs.length > 5000) stats.browserMs.splice(0, 2500);
    const info = stats.choice[s.model] || {};
    showResult(version, () => {
      out.width = res.width; out.height = res.height;
      outCtx.putImageData(new ImageData(new Uint8ClampedArray(res.pixels), res.width), 0, 0);
    }, 'browser', 'in your browser · ' + runtimeText(res.backend, info.threads) + ' · '
      + Math.round(res.ms) + ' ms', whyHere(s.model));
  }

  async function viaServer(s, version) {
    stats.sent += 1;
    stats.serverCalls += 1;
    let res;
    try {
      res = await server.translate_drawing({ image: exportPNG(), model: s.model, seed: s.seed });
    } catch (err) {
      res = { error: 'No answer from the server (' + ((err && err.message) || err) + ')' };
    }
    if (!(res && res.image)) throw new Error((res && res.error) || 'Translation failed.');
    const img = new Image();
    img.src = res.image;
    await img.decode();
    stats.serverMs.push(res.ms);
    if (stats.serverMs.length > 5000) stats.serverMs.splice(0, 2500);
    showResult(version, () => {
      out.width = img.naturalWidth; out.height = img.naturalHeight;
      outCtx.drawImage(img, 0, 0);
    }, 'server', 'on the server · ' + res.label + ' · ' + Math.round(res.ms) + ' ms',
    s.seed != null ? 'Variations (dropout noise) run on the server.' : whyHere(s.model));
  }

  async function pump() {
    const s = st.cfg;
    if (!s || !(s.ready || s.browser) || st.inflight) return;
    const where = route(s);
    const key = s.model + '|' + s.seed + '|' + where;
    if (st.sentVersion === st.version && st.sentKey === key) return;
    const version = st.version;
    if (isBlank()) {  // nothing drawn: never show a translation of an empty canvas
      st.sentVersion = version; st.sentKey = key;
      showPlaceholder(version);
      return;
    }
    if (where === 'wait') {
      if (!stats.choice[s.model] || stats.choice[s.model].where === 'pending') {
        placeholder.textContent = 'Loading the model into your browser…';
      }
      return;  // decide() calls pump() when the browser is ready
    }
    st.sentVersion = version; st.sentKey = key; st.inflight = where; st.inflightVersion = version;
    try {
      if (where === 'browser') await viaBrowser(s, version);
      else await viaServer(s, version);
    } catch (err) {
      stats.errors += 1;
      setStatus((err && err.message) || 'Translation failed.', true);
    }
    st.inflight = false;
    pump();  // latest wins: if the drawing changed while waiting, translate the newest state now
  }

  // The download is a lossless PNG: the browser's result as it is; the server's live updates are
  // JPEGs (small and quick), so it is asked for the same result as a PNG.
  dlResult.addEventListener('click', async (e) => {
    e.preventDefault();
    const s = st.cfg;
    if (!s || st.result === 'none') return;
    let href;
    if (st.result === 'browser' || !server) {
      href = out.toDataURL('image/png');
    } else {
      stats.serverCalls += 1;
      const res = await server.translate_drawing(
        { image: exportPNG(), model: s.model, seed: s.seed, format: 'png' });
      if (!res || !res.image) { setStatus((res && res.error) || 'Download failed.', true); return; }
      href = res.image;
    }
    const a = document.createElement('a');
    a.href = href;
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
}
