// The canvas's model runner: a dedicated worker holding one onnxruntime-web session per model,
// so that a model run never blocks the page (drawing stays smooth even for the paper's generator).
//
// Messages (each carries an `id`; the answer repeats it, with `error` when something failed):
//   {type: 'init', ort, webgpu, cancel?}  load onnxruntime-web from the folder `ort` (the app's
//       own origin); the WebGPU build when `webgpu` and the browser has a real (not software) GPU
//       adapter, otherwise the WASM build. `webgpu: 'software'` takes a software adapter too
//       (SwiftShader: far slower than WASM; for tests of the WebGPU kernels on machines without a
//       GPU).
//       `cancel`: a SharedArrayBuffer (Int32 [generation]) the page bumps to drop older runs.
//       -> {backends, threads}
//   {type: 'load', model, url, size, stages?, backend?}  download an ONNX file and create its
//       session. With WebGPU, a WASM session is made too, each is timed on one input, and the
//       faster is kept; `backend` ('webgpu' or 'wasm') takes that one without measuring.
//       `stages`: the URLs of the same graph cut into stages (pix2pix/stages.py); the WASM session
//       is then one session per stage, run in sequence, when the page can cancel runs.
//       -> {backend, threads, ms (download + session creation), downloadMs, sessionMs,
//           downloads: [[file name, start, end] (epoch ms)] of the worker's requests so far}
//   {type: 'run', model, width, height, rgba, generation?}  RGBA bytes of the drawing at the
//       model's size -> {pixels (RGBA bytes of the output), width, height, ms (the model run),
//       backend}, or {superseded: true, ms} when the page's generation moved past `generation`
//       before the last stage (a newer drawing waits: this run's output would be stale).
//
// Conversions follow pix2pix/inference.py: input v / 255 * 2 - 1 (channels first; one-channel
// models take the luminance 0.299 R + 0.587 G + 0.114 B), output round((y + 1) * 127.5) clamped to
// 0..255. The graph has dropout off and normalises with each image's own statistics (the paper's
// test mode), exported by pix2pix/export.py.
/* global ort, importScripts */
'use strict';

let ready = null;
const state = { backends: ['wasm'], threads: 1, adapterMs: 0, cancel: null };
// model -> {session, input, output, channels, backend}; `session` runs the whole graph, or
// `stages` ([{session, inputs}]) run one after another instead.
const sessions = new Map();
const downloads = new Map();  // url -> Promise<Uint8Array>
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
  importScripts(msg.ort + (gpu ? 'ort.webgpu.min.js' : 'ort.wasm.min.js'));
  ort.env.wasm.wasmPaths = msg.ort;
  ort.env.wasm.proxy = false;  // this worker already keeps the page free
  // Threads need SharedArrayBuffer, which needs a cross-origin isolated page (COOP + COEP).
  // onnxruntime-web's default is ceil(cores / 2) capped at 4, i.e. 1 on a 2-core machine.
  const cores = (self.navigator && navigator.hardwareConcurrency) || 1;
  state.threads = self.crossOriginIsolated ? Math.max(1, Math.min(4, cores)) : 1;
  ort.env.wasm.numThreads = state.threads;
  state.backends = gpu ? ['webgpu', 'wasm'] : ['wasm'];
  const bytes = Uint8Array.from(atob(WARM_MODEL), (c) => c.charCodeAt(0));
  runtime = ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] }).then(
    (session) => session.release());
  runtime.catch(() => {});  // the model's own session creation meets and reports the failure
  return { backends: state.backends, threads: state.threads, adapterMs: state.adapterMs };
}

// The files a model's WASM session is made from: its stages where the page can drop a run
// between them (it shares a cancel flag: cross-origin isolated), else the whole graph. WebGPU
// always takes the whole graph: stages would copy each boundary's tensors back from the GPU.
function wasmFiles(msg) {
  return msg.stages && msg.stages.length > 1 && state.cancel !== null ? msg.stages : [msg.url];
}

// The model's bytes, fetched once per URL; started as soon as a 'load' arrives, even before
// onnxruntime-web is loaded.
function download(url) {
  if (!downloads.has(url)) {
    const bytes = fetch(url).then((response) => {
      if (!response.ok) throw new Error('model download failed: HTTP ' + response.status);
      return response.arrayBuffer();
    }).then((buffer) => new Uint8Array(buffer));
    bytes.catch(() => {});  // load() reports it
    downloads.set(url, bytes);
  }
  return downloads.get(url);
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
  for (const buffer of buffers) made.push(await ort.InferenceSession.create(buffer, options));
  const first = made[0], last = made[made.length - 1];
  const input = first.inputNames[0];
  const meta = first.inputMetadata && first.inputMetadata[0];
  const dims = meta && meta.shape ? meta.shape : [1, 3];
  const channels = typeof dims[1] === 'number' ? dims[1] : 3;
  const entry = { input, output: last.outputNames[0], channels, backend };
  if (made.length === 1) {
    entry.session = first;
  } else {
    entry.stages = made.map((s) => ({ session: s, inputs: s.inputNames }));
    entry.session = { release: () => Promise.all(made.map((s) => s.release())) };
  }
  return entry;
}

async function load(msg) {
  const t0 = performance.now();
  if (msg.backend && !state.backends.includes(msg.backend)) {
    throw new Error('backend ' + msg.backend + ' is not available here (' + state.backends + ')');
  }
  const backends = msg.backend ? [msg.backend] : state.backends;
  const files = (backend) => (backend === 'wasm' ? wasmFiles(msg) : [msg.url]);
  await Promise.all(backends.flatMap(files).map(download));
  const downloaded = performance.now();
  await runtime.catch(() => {});
  let best = null;
  for (const backend of backends) {
    let entry;
    try {
      entry = await create(await Promise.all(files(backend).map(download)), backend);
    } catch (err) {
      if (backends.length === 1) throw err;
      continue;  // e.g. an op WebGPU lacks: the next backend
    }
    if (backends.length > 1) {  // measure: warm up, then time one run
      const side = msg.size || 256;
      const blank = new Uint8ClampedArray(4 * side * side).fill(255);
      await runOnce(entry, blank, side, side);
      entry.ms = (await runOnce(entry, blank, side, side)).ms;
      if (best && best.ms <= entry.ms) { entry.session.release(); continue; }
      if (best) best.session.release();
    }
    best = entry;
  }
  if (!best) throw new Error('no backend could create a session');
  sessions.set(msg.model, best);
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

self.onmessage = async (e) => {
  const msg = e.data;
  let reply;
  try {
    if (msg.type === 'init') {
      ready = init(msg);
      reply = await ready;
    } else {
      if (msg.type === 'load') wasmFiles(msg).forEach(download);  // before onnxruntime-web is in
      if (!ready) throw new Error('the runner was not initialised');
      await ready;
      reply = msg.type === 'load' ? await load(msg) : await run(msg);
    }
  } catch (err) {
    reply = { error: String((err && err.message) || err) };
  }
  const transfer = reply.transfer || [];
  delete reply.transfer;
  self.postMessage(Object.assign({ id: msg.id }, reply), transfer);
};
