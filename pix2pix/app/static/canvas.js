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
// Python talks to it through two props: `settings` (model, seed, input kind, size, palette and,
// when the browser can run it, `browser`: {onnx, ort, worker} URLs) and `load` (an image data URL to
// paint onto the canvas, e.g. an example). `props.value` is the current drawing as a PNG data URL
// at the model's resolution, set at the end of every stroke, so other events (Compare) can read it.
//
// Label maps are drawn at the model's resolution with integer-aligned rectangles only, so every
// pixel holds an exact palette colour; edge and photo drawings are drawn smoothly on a larger canvas
// and scaled down for the model.
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
  const SIZES = { edges: [0.5, 8, 0.5, 1], labels: [1, 64, 1, 12], photo: [1, 64, 1, 8] };
  const MAX_UNDO = 40;

  const st = {
    cfg: null, layout: '', tool: 'pen', color: [0, 0, 0], width: 1, scale: 1, crisp: false,
    undo: [], version: 0, sentVersion: -1, sentKey: '', shown: -1,
    inflight: false, inflightVersion: -1,  // where the drawing `inflightVersion` is being run
    drawing: false, pointer: null, last: null, start: null, before: null, pendingUp: null,
    exported: { version: -1, url: '' }, pixels: { version: -1, layout: '', data: null },
    result: 'none',  // what the output pane holds: none | browser | server
  };
  // Read by tests and benchmarks: latencies (pointer-up -> new output shown, ms), shown updates,
  // requests sent to the server, and per model where it runs and why.
  const stats = {
    latencies: [], shown: [], serverMs: [], browserMs: [], errors: 0, sent: 0, serverCalls: 0,
    supersedes: 0,  // pointer-ups that asked the worker to drop a run of an older drawing
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
    out.classList.toggle('p2p-crisp', s.size < 256);
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

  // --- drawing ------------------------------------------------------------------------------
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
    // A browser run of an older drawing would delay the final one: drop it at its next stage.
    if (st.inflight === 'browser' && st.inflightVersion < st.version && engine.supersede()) {
      stats.supersedes += 1;
    }
    pump();  // first: the final drawing's run starts before its PNG is encoded
    commit();
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
    stats.shown.push({ t: now, version, during: st.drawing, where });
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
