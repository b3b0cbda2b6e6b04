// The canvas's model runner: a dedicated worker holding one onnxruntime-web session per model,
// so that a model run never blocks the page (drawing stays smooth even for the paper's generator).
//
// Messages (each carries an `id`; the answer repeats it, with `error` when something failed, and
// then `phase`, where it failed, and `threads`, the WASM thread count it failed with):
//   {type: 'init', ort, webgpu, cancel?, threads?}  load onnxruntime-web from the folder `ort`
//       (the app's own origin); the WebGPU build when `webgpu` and the browser has a real (not
//       software) GPU adapter, otherwise the WASM build. `webgpu: 'software'` takes a software
//       adapter too (SwiftShader: far slower than WASM; for tests of the WebGPU kernels on
//       machines without a GPU).
//       `cancel`: a SharedArrayBuffer (Int32 [generation]) the page bumps to drop older runs.
//       `threads`: at most this many WASM threads (1 where threaded WebAssembly failed on this
//       device: the module cannot change its thread count once started, so the page starts a
//       fresh worker for that).
//       -> {backends, threads}
//   {type: 'load', model, url, size, stages?, backend?, maxBytes?}  download an ONNX file and
//       create its session. With WebGPU, a WASM session is made too, from the same bytes (one
//       download), each is timed on one input, and the faster is kept; `backend` ('webgpu' or
//       'wasm') takes that one without measuring. `stages`: the URLs of the same graph cut into
//       stages (pix2pix/stages.py); a WASM-only load then makes one session per stage, run in
//       sequence, when the page can cancel runs. `maxBytes`: refuse (before the body is
//       downloaded) files whose Content-Length adds up to more.
//       While it works it sends {id, progress: {phase, bytes}} (phase: download, runtime,
//       session, measure; bytes downloaded so far), so that the page can tell a slow load from
//       one that hangs.
//       -> {backend, threads, ms (download + session creation), downloadMs, sessionMs,
//           downloads: [[file name, start, end] (epoch ms)] of the worker's requests so far}
//       The downloaded bytes are dropped once the session exists (onnxruntime-web copied them).
//   {type: 'run', model, width, height, rgba, generation?}  RGBA bytes of the drawing at the
//       model's size -> {pixels (RGBA bytes of the output), width, height, ms (the model run),
//       backend}, or {superseded: true, ms} when the page's generation moved past `generation`
//       before the last stage (a newer drawing waits: this run's output would be stale).
//   {type: 'release', model}  release the model's sessions (the page no longer shows it).
//   {type: 'stats'}  -> {created, released (sessions, all time), models (those loaded),
//       heldBytes (downloaded bytes still held), threads}
//
// Conversions follow pix2pix/inference.py: input v / 255 * 2 - 1 (channels first; one-channel
// models take the luminance 0.299 R + 0.587 G + 0.114 B), output round((y + 1) * 127.5) clamped to
// 0..255. The graph has dropout off and normalises with each image's own statistics (the paper's
// test mode), exported by pix2pix/export.py.
/* global ort, importScripts */
'use strict';

let ready = null;
const state = { backends: null, threads: 1, adapterMs: 0, cancel: null };
// model -> {session, input, output, channels, backend, all}; `session` runs the whole graph, or
// `stages` ([{session, inputs}]) run one after another instead; `all`: every session it holds.
const sessions = new Map();
// url -> {head: Promise<total bytes or null>, bytes: Promise<Uint8Array>, received, abort()}
const downloads = new Map();
const early = [];  // 'load' messages that came before the backends (hence the files) were known
const counts = { created: 0, released: 0 };  // sessions, for the page's memory accounting
let runtime = null;  // Promise: onnxruntime-web's WebAssembly compiled and started

// The smallest ONNX model (opset 18, one Identity node on a float[1]: x -> y). onnxruntime-web
// fetches, compiles and starts its WebAssembly when the first session is created; creating this
// one right after the script loads does that while the real model is still downloading, instead
// of after (tests/test_app_static.py checks these bytes with the onnx package).
const WARM_MODEL = 'CAgSADo6ChAKAXgSAXkiCElkZW50aXR5EgR3YXJtWg8KAXgSCgoICAESBAoCCAFiDwoBeRIKCggIARIECgIIAUIECgAQEg==';

async function realGpuAdapter(acceptSoftware) {
  if (!self.navigator || !navigator.gpu) return false;
  try {
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) return false;
    const info = adapter.info || {};
    // A software adapter (SwiftShader) is far slower than WASM: treat it as no GPU.
    return acceptSoftware || !(adapter.isFallbackAdapter || info.isFallbackAdapter);
  } catch (err) {
    return false;
  }
}

async function init(msg) {
  state.cancel = msg.cancel ? new Int32Array(msg.cancel) : null;  // before a 'load' arrives
  const t0 = performance.now();
  const gpu = msg.webgpu && (await realGpuAdapter(msg.webgpu === 'software'));
  state.adapterMs = performance.now() - t0;
  state.backends = gpu ? ['webgpu', 'wasm'] : ['wasm'];
  early.splice(0).forEach(prefetch);  // the files are known now: download while the rest loads
  importScripts(msg.ort + (gpu ? 'ort.webgpu.min.js' : 'ort.wasm.min.js'));
  ort.env.wasm.wasmPaths = msg.ort;
  ort.env.wasm.proxy = false;  // this worker already keeps the page free
  // Threads need SharedArrayBuffer, which needs a cross-origin isolated page (COOP + COEP).
  // onnxruntime-web's default is ceil(cores / 2) capped at 4, i.e. 1 on a 2-core machine.
  const cores = (self.navigator && navigator.hardwareConcurrency) || 1;
  const most = Math.min(4, cores, msg.threads || 4);
  state.threads = self.crossOriginIsolated ? Math.max(1, most) : 1;
  ort.env.wasm.numThreads = state.threads;
  const bytes = Uint8Array.from(atob(WARM_MODEL), (c) => c.charCodeAt(0));
  runtime = newSession(bytes, { executionProviders: ['wasm'] }).then((session) => {
    counts.released += 1;
    return session.release();
  });
  runtime.catch(() => {});  // the model's own session creation meets and reports the failure
  return { backends: state.backends, threads: state.threads, adapterMs: state.adapterMs };
}

function newSession(bytes, options) {
  return ort.InferenceSession.create(bytes, options).then((session) => {
    counts.created += 1;
    return session;
  });
}

// The files a model's sessions are made from, the same for every backend it tries: measuring
// WebGPU against WASM, both take the whole graph (one download; stages would be a second). A
// WASM-only load takes the stages where the page can drop a run between them (it shares a cancel
// flag: cross-origin isolated); WebGPU always takes the whole graph (stages would copy each
// boundary's tensors back from the GPU).
function modelFiles(msg) {
  const backends = msg.backend ? [msg.backend] : state.backends;
  const staged = backends.length === 1 && backends[0] === 'wasm' && state.cancel !== null
    && msg.stages && msg.stages.length > 1;
  return staged ? msg.stages : [msg.url];
}

// Start a 'load' message's downloads (as soon as it arrives, even before onnxruntime-web is in).
function prefetch(msg) {
  modelFiles(msg).forEach(download);
}

// A file's bytes, fetched once per URL (until the session made from them exists), counting what
// has arrived; `head` resolves with the Content-Length as soon as the headers are in.
function download(url) {
  if (!downloads.has(url)) {
    const controller = new AbortController();
    const file = { received: 0, abort: () => controller.abort() };
    const response = fetch(url, { signal: controller.signal }).then((r) => {
      if (!r.ok) throw new Error('model download failed: HTTP ' + r.status);
      return r;
    });
    file.head = response.then((r) => Number(r.headers.get('content-length')) || null);
    file.bytes = response.then((r) => readBody(r, file));
    file.head.catch(() => {});  // load() reports it
    file.bytes.catch(() => {});
    downloads.set(url, file);
  }
  return downloads.get(url);
}

// The body of `response`, counting bytes into `file.received` as they arrive: written into one
// buffer of the announced size when the body is not encoded (no second copy at the end, which a
// 218 MB model would feel), else kept in chunks and joined.
async function readBody(response, file) {
  const announced = Number(response.headers.get('content-length')) || 0;
  const out = announced > 0 && !response.headers.get('content-encoding')
    ? new Uint8Array(announced) : null;
  const reader = response.body.getReader();
  const chunks = [];
  let filled = 0;  // bytes written into `out`; the rest, if any, went to `chunks`
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (out && filled === file.received && filled + value.length <= out.length) {
      out.set(value, filled);
      filled += value.length;
    } else {
      chunks.push(value);
    }
    file.received += value.length;
  }
  if (out && filled === file.received) return out.subarray(0, filled);
  const all = new Uint8Array(file.received);
  let at = 0;
  for (const part of out ? [out.subarray(0, filled), ...chunks] : chunks) {
    all.set(part, at);
    at += part.length;
  }
  return all;
}

function toInput(rgba, width, height, channels) {
  const n = width * height, x = new Float32Array(channels * n);
  for (let i = 0; i < n; i++) {
    const r = rgba[4 * i], g = rgba[4 * i + 1], b = rgba[4 * i + 2];
    if (channels === 1) {
      x[i] = (0.299 * r + 0.587 * g + 0.114 * b) / 255 * 2 - 1;
    } else {
      x[i] = r / 255 * 2 - 1;
      x[n + i] = g / 255 * 2 - 1;
      x[2 * n + i] = b / 255 * 2 - 1;
    }
  }
  return new ort.Tensor('float32', x, [1, channels, height, width]);
}

function toPixels(y, width, height, channels) {
  const n = width * height, px = new Uint8ClampedArray(4 * n);
  const byte = (v) => Math.min(255, Math.max(0, Math.round((v + 1) * 127.5)));
  for (let i = 0; i < n; i++) {
    const r = byte(y[i]);
    px[4 * i] = r;
    px[4 * i + 1] = channels === 1 ? r : byte(y[n + i]);
    px[4 * i + 2] = channels === 1 ? r : byte(y[2 * n + i]);
    px[4 * i + 3] = 255;
  }
  return px;
}

// Whether the page has dropped runs of `generation` (a newer drawing is waiting).
function superseded(generation) {
  return state.cancel !== null && generation !== undefined
    && Atomics.load(state.cancel, 0) !== generation;
}

async function runOnce(entry, rgba, width, height, generation) {
  const x = toInput(rgba, width, height, entry.channels);
  const t0 = performance.now();
  let result;
  if (entry.stages) {
    result = { [entry.input]: x };  // every tensor so far, by name
    for (const stage of entry.stages) {
      if (superseded(generation)) return { superseded: true, ms: performance.now() - t0 };
      const feeds = {};
      for (const name of stage.inputs) feeds[name] = result[name];
      Object.assign(result, await stage.session.run(feeds));
    }
  } else {
    result = await entry.session.run({ [entry.input]: x });
  }
  const ms = performance.now() - t0;
  const y = result[entry.output];
  const data = y.data;
  const channels = y.dims[1];
  if (y.dispose) y.dispose();
  return { data, channels, ms };
}

// One session per buffer: a whole graph, or (several buffers) its stages in order.
async function create(buffers, backend) {
  const options = { executionProviders: [backend], graphOptimizationLevel: 'all' };
  const made = [];
  try {
    for (const buffer of buffers) made.push(await newSession(buffer, options));
  } catch (err) {
    await release({ all: made });
    throw err;
  }
  const first = made[0], last = made[made.length - 1];
  const input = first.inputNames[0];
  const meta = first.inputMetadata && first.inputMetadata[0];
  const dims = meta && meta.shape ? meta.shape : [1, 3];
  const channels = typeof dims[1] === 'number' ? dims[1] : 3;
  const entry = { input, output: last.outputNames[0], channels, backend, all: made };
  if (made.length === 1) entry.session = first;
  else entry.stages = made.map((s) => ({ session: s, inputs: s.inputNames }));
  return entry;
}

function release(entry) {
  counts.released += entry.all.length;
  return Promise.all(entry.all.map((s) => s.release()));
}

// A refusal before the download: the files add up to more than the page allows on this device.
async function checkSize(files, maxBytes) {
  const sizes = await Promise.all(files.map((url) => download(url).head));
  const total = sizes.reduce((a, b) => a + (b || 0), 0);
  if (total <= maxBytes) return;
  files.forEach((url) => { download(url).abort(); downloads.delete(url); });
  throw new Error('the model is ' + Math.round(total / 1e6) + ' MB, more than the '
    + Math.round(maxBytes / 1e6) + ' MB this page loads on a device this size');
}

// Time a run on a blank input (after a warm-up run): how WebGPU and WASM are compared.
async function timeEntry(entry, size) {
  const blank = new Uint8ClampedArray(4 * size * size).fill(255);
  await runOnce(entry, blank, size, size);
  return (await runOnce(entry, blank, size, size)).ms;
}

// `progress` ({phase, bytes}) is reported to the page while this works; an error thrown here
// carries the phase it happened in.
async function load(msg, progress) {
  const t0 = performance.now();
  if (msg.backend && !state.backends.includes(msg.backend)) {
    throw new Error('backend ' + msg.backend + ' is not available here (' + state.backends + ')');
  }
  const backends = msg.backend ? [msg.backend] : state.backends;
  const files = progress.files = modelFiles(msg);
  progress.phase = 'download';
  let best = null, downloaded;
  try {
    if (msg.maxBytes) await checkSize(files, msg.maxBytes);
    const buffers = await Promise.all(files.map((url) => download(url).bytes));
    downloaded = performance.now();
    progress.phase = 'runtime';
    // Where WebAssembly could not start (iOS Safari's threaded `RangeError: Out of memory`), no
    // session can be made: say why, rather than onnxruntime-web's "previous call failed".
    const failed = await runtime.then(() => null, (err) => err);
    if (failed) throw failed;
    for (const backend of backends) {
      progress.phase = 'session';
      let entry;
      try {
        entry = await create(buffers, backend);
      } catch (err) {
        if (backends.length === 1) throw err;
        continue;  // e.g. an op WebGPU lacks: the next backend
      }
      if (backends.length > 1) {
        progress.phase = 'measure';
        entry.ms = await timeEntry(entry, msg.size || 256);
        if (best && best.ms <= entry.ms) { await release(entry); continue; }
        if (best) await release(best);
      }
      best = entry;
    }
  } finally {
    // onnxruntime-web copied the bytes into its own memory: drop ours (a later load of the
    // same file downloads it again, from the browser's cache).
    files.forEach((url) => downloads.delete(url));
  }
  if (!best) throw new Error('no backend could create a session');
  const old = sessions.get(msg.model);
  sessions.set(msg.model, best);
  if (old) await release(old);
  const t1 = performance.now();
  // The worker's downloads (onnxruntime-web, the model) on the page's clock: the epoch ms of
  // their start and end, for the benchmark's account of the start-up.
  const at = (t) => Math.round(performance.timeOrigin + t);
  const fetched = performance.getEntriesByType('resource').map(
    (e) => [e.name.split('?')[0].split('/').pop(), at(e.startTime), at(e.responseEnd)]);
  return {
    backend: best.backend, threads: state.threads, ms: t1 - t0,
    downloadMs: downloaded - t0, sessionMs: t1 - downloaded, downloads: fetched,
  };
}

async function run(msg) {
  const entry = sessions.get(msg.model);
  if (!entry) throw new Error('model ' + msg.model + ' is not loaded');
  const res = await runOnce(entry, msg.rgba, msg.width, msg.height, msg.generation);
  if (res.superseded) return { superseded: true, ms: res.ms, backend: entry.backend };
  const { data, channels, ms } = res;
  const pixels = toPixels(data, msg.width, msg.height, channels);
  const transfer = [pixels.buffer];
  return { pixels, width: msg.width, height: msg.height, ms, backend: entry.backend, transfer };
}

async function unload(msg) {
  const entry = sessions.get(msg.model);
  if (!entry) return { released: 0 };
  sessions.delete(msg.model);
  await release(entry);
  return { released: entry.all.length };
}

function stats() {
  let heldBytes = 0;
  for (const file of downloads.values()) heldBytes += file.received;
  return {
    created: counts.created, released: counts.released, models: [...sessions.keys()],
    heldBytes, threads: state.threads,
  };
}

// Answer a 'load', reporting its phase and the bytes downloaded every half second until it ends.
async function loadWithProgress(msg) {
  const progress = { phase: 'download', files: [] };
  const received = (url) => (downloads.has(url) ? downloads.get(url).received : 0);
  const post = () => self.postMessage({ id: msg.id, progress: {
    phase: progress.phase, bytes: progress.files.reduce((n, url) => n + received(url), 0) } });
  const beat = setInterval(post, 500);
  try {
    return await load(msg, progress);
  } catch (err) {
    throw Object.assign(err instanceof Error ? err : new Error(String(err)),
      { phase: progress.phase });
  } finally {
    clearInterval(beat);
  }
}

const HANDLERS = { load: loadWithProgress, run, release: unload, stats };

self.onmessage = async (e) => {
  const msg = e.data;
  let reply;
  try {
    if (msg.type === 'init') {
      ready = init(msg);
      reply = await ready;
    } else {
      if (msg.type === 'load') {
        if (state.backends) prefetch(msg); else early.push(msg);  // before onnxruntime-web is in
      }
      if (!ready) throw new Error('the runner was not initialised');
      await ready;
      if (!HANDLERS[msg.type]) throw new Error('unknown message type ' + msg.type);
      reply = await HANDLERS[msg.type](msg);
    }
  } catch (err) {
    const phase = (err && err.phase) || msg.type;
    reply = { error: String((err && err.message) || err), phase, threads: state.threads };
  }
  const transfer = reply.transfer || [];
  delete reply.transfer;
  self.postMessage(Object.assign({ id: msg.id }, reply), transfer);
};
