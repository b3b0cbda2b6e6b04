// The page's side of the browser runtime: one worker (runner.js) holding an onnxruntime-web
// session per model, shared by everything on the page (p2pEngine() returns the same object).
//
// In the app this file runs twice: early, from the page's <head> (Gradio's launch(head=...)),
// where p2pPreload(url) starts the worker, onnxruntime-web, the default model's download, session
// and timing while Gradio's own page is still loading; and later as part of the canvas's script
// (canvas.js), which then finds the engine already under way. On the static site it is a plain
// <script> before canvas.js.
//
// `marks` records when each start-up phase first ended (performance.now(), i.e. ms since the
// page's navigation started), also as performance marks named 'p2p:<phase>'.
//
// Where onnxruntime-web is fragile:
// - Threaded WebAssembly can fail to start (iOS Safari on a cross-origin isolated page:
//   `RangeError: Out of memory`, onnxruntime #11679 / #22086) or hang. The module cannot change
//   its thread count once started, so while no model has loaded yet, a failed or stalled load
//   is retried once in a fresh worker with one thread; a threaded failure is remembered for the
//   device (localStorage, like the choices below) and later visits start on one thread.
// - A load that makes no progress (no new bytes, no next phase) for a minute gives up: in the
//   app (hasServer) the server answers; on the static site the one-thread retry, then the
//   canvas says why.
// - Memory: WASM memory only grows and sessions live until released (onnxruntime #21673,
//   #13391). The worker keeps the sessions of the shown model and the default (the first
//   loaded) only: show() releases the others, and a model shown again is loaded again at its
//   next run (its file then comes from the browser's cache; in the app its URL is versioned and
//   cached as immutable). The worker drops a model's downloaded bytes once its session exists.
// - Paper-size models (unet_256, ngf 64: 218 MB) on a small device (navigator.deviceMemory at
//   most 4 GB; where the browser does not say, as in Safari and Firefox, a touch screen as the
//   primary pointer): in the app, model files above 100 MB stay on the server, refused from
//   their Content-Length before any body is downloaded. The static site has no server: there
//   every model is tried.
/* exported p2pEngine, p2pPreload */

function p2pEngine() {
  'use strict';
  if (self.p2pSharedEngine) return self.p2pSharedEngine;
  const abs = (u) => new URL(u, document.baseURI).href;
  // stallMs: a load that reports no progress this long has stalled. Generous, because
  // onnxruntime-web's own download of its WebAssembly (14 MB, first visit only: cached after)
  // reports none: it has the model's download time plus this. bigModelBytes: see above.
  // Test-only: tests shorten these with an init script (self.p2pTestLimits = {...}).
  const limits = Object.assign({ stallMs: 60e3, bigModelBytes: 100e6 }, self.p2pTestLimits);
  const SMALL_DEVICE_GB = 4;
  // A choice measured on this device is remembered in localStorage per model, with the exact
  // export it was measured on (its URL names the weights) and the device (browser, cores, whether
  // threads are on); another file, another device or a week's age and it is measured again.
  const MEMORY_DAYS = 7;
  const device = () => [navigator.userAgent, navigator.hardwareConcurrency || 0,
    self.crossOriginIsolated ? 'isolated' : 'plain'].join(' | ');
  const memoryKey = (model) => 'pix2pix-where:' + model;
  const THREADS_KEY = 'pix2pix-threads';  // {threads: 1, reason, device, at}
  const fresh = (m) => m && m.device === device() && Date.now() - m.at < MEMORY_DAYS * 864e5;
  const read = (key) => {
    try {
      return JSON.parse(localStorage.getItem(key) || 'null');
    } catch (err) {
      return null;  // storage switched off, or an entry that is not ours
    }
  };
  const write = (key, value) => {
    try {
      const entry = Object.assign(value, { device: device(), at: Date.now() });
      localStorage.setItem(key, JSON.stringify(entry));
      return true;
    } catch (err) {
      return false;  // storage full or switched off: measured again next time
    }
  };
  const smallDevice = () => {
    const gb = navigator.deviceMemory;
    if (typeof gb === 'number') return gb <= SMALL_DEVICE_GB;
    return Boolean(self.matchMedia && matchMedia('(pointer: coarse)').matches);
  };
  const PHASES = {  // what a load was doing when it stalled ('load': not begun, still starting)
    load: 'starting onnxruntime-web', download: 'downloading the model',
    runtime: "starting onnxruntime-web's WebAssembly", session: "creating the model's session",
    measure: 'timing WebGPU against WASM',
  };
  const engine = {
    worker: null, failed: null, seq: 0, waiting: new Map(), timings: new Map(),
    info: null, marks: {}, onfail: null, browser: null,
    // model -> {msg: its 'load' message, loaded: Promise of the load's answer or null (not in
    // the worker), settled: Promise that ends when the worker has released it}
    models: new Map(),
    default: null, shown: null,
    hasServer: false,  // the app's head (p2pPreload) sets it: the server answers what we cannot
    loadedHere: false,  // a model loaded in this worker: its runtime works, no retry after that
    counts: { restarts: 0, stalls: 0 },
    // Int32 [generation], shared with the worker (cross-origin isolated pages only): bumped by
    // supersede(), which drops the runs posted before at their next stage boundary.
    generation: self.crossOriginIsolated && typeof SharedArrayBuffer === 'function'
      ? new Int32Array(new SharedArrayBuffer(4)) : null,

    mark(phase) {
      if (phase in this.marks) return;
      this.marks[phase] = performance.now();
      if (performance.mark) performance.mark('p2p:' + phase);
    },
    start(b) {  // b: the settings' `browser` part, {worker, ort, webgpu}
      if (this.worker || this.failed) return;
      this.browser = b;
      this.boot(fresh(read(THREADS_KEY)) ? 1 : 0);
    },
    // A worker with at most `threads` WASM threads (0: as many as the device has).
    boot(threads) {
      try {
        this.worker = new Worker(abs(this.browser.worker));
      } catch (err) {
        this.fail('the worker did not start (' + (err.message || err) + ')');
        return;
      }
      this.mark('worker');
      const worker = this.worker;
      worker.onmessage = (e) => { if (worker === this.worker) this.answer(e.data); };
      worker.onerror = (e) => {
        e.preventDefault();
        if (worker === this.worker) this.fail(e.message || 'worker error');
      };
      const cancel = this.generation ? this.generation.buffer : null;
      const b = this.browser;
      const msg = { type: 'init', ort: abs(b.ort), webgpu: b.webgpu !== false, cancel, threads };
      // Not watched: a start that hangs stalls the loads posted behind it, which are.
      this.call(msg).then(
        (info) => { this.info = info; this.mark('runtime'); },
        (err) => { if (!err.restarted) this.fail(err.message); },
      );
    },
    fail(message) {
      if (this.failed) return;
      this.failed = message;
      this.stop(new Error(message));
      if (this.onfail) this.onfail(message);
    },
    // End the worker; what waits for it is rejected with `reason`.
    stop(reason) {
      for (const w of this.waiting.values()) { clearTimeout(w.timer); w.reject(reason); }
      this.waiting.clear();
      if (this.worker) this.worker.terminate();
      this.worker = null;
    },
    // Replace the worker by a fresh one on one thread (once per page): the loads under way go
    // on in the new one.
    restart() {
      this.counts.restarts += 1;
      this.stop(Object.assign(new Error('the worker was replaced'), { restarted: true }));
      this.info = null;
      for (const m of this.models.values()) m.settled = Promise.resolve();
      this.boot(1);
    },
    // `watched`: the call fails if the worker reports no progress for limits.stallMs.
    call(msg, transfer, watched) {
      if (this.failed) return Promise.reject(new Error(this.failed));
      if (!this.worker) return Promise.reject(new Error('the runtime was not started'));
      const id = ++this.seq;
      return new Promise((resolve, reject) => {
        const w = { resolve, reject, phase: null, bytes: 0, timer: 0 };
        if (watched) {
          w.progress = (p) => {  // a new phase or more bytes: wait limits.stallMs more
            if (p.phase === w.phase && p.bytes <= w.bytes) return;
            Object.assign(w, { phase: p.phase, bytes: p.bytes });
            clearTimeout(w.timer);
            w.timer = setTimeout(() => this.stalled(id, w), limits.stallMs);
          };
          w.progress({ phase: msg.type, bytes: 0 });
        }
        this.waiting.set(id, w);
        this.worker.postMessage(Object.assign({ id }, msg), transfer || []);
      });
    },
    stalled(id, w) {
      this.waiting.delete(id);
      this.counts.stalls += 1;
      const message = 'no progress for ' + Math.round(limits.stallMs / 1000) + ' s while '
        + (PHASES[w.phase] || w.phase);
      const threads = this.info ? this.info.threads : 0;
      w.reject(Object.assign(new Error(message), { stalled: true, phase: w.phase, threads }));
    },
    answer(m) {
      const w = this.waiting.get(m.id);
      if (!w) return;
      if (m.progress) {
        if (w.progress) w.progress(m.progress);
        return;
      }
      this.waiting.delete(m.id);
      clearTimeout(w.timer);
      if (!m.error) w.resolve(m);
      else w.reject(Object.assign(new Error(m.error), { phase: m.phase, threads: m.threads }));
    },
    // Whether a failed load is retried in a fresh worker on one thread: only while no model has
    // loaded in this worker (its runtime has not proved itself), once per page; a threaded
    // failure (not a download's), or a stall where no server can answer instead.
    retries(err) {
      if (this.loadedHere || this.counts.restarts > 0 || this.failed) return false;
      const threaded = err.threads > 1 && err.phase !== 'download';
      return err.stalled ? !this.hasServer : threaded;
    },
    // Post a load to the worker, and again to a fresh one-thread worker where retries() says so.
    async attempt(msg) {
      for (;;) {
        try {
          const info = await this.call(msg, [], true);
          this.loadedHere = true;
          return info;
        } catch (err) {
          if (err.restarted) continue;  // another load replaced the worker: ask the new one
          if (!this.retries(err)) {
            if (this.counts.restarts > 0) err.message += ' (also in a fresh worker on one thread)';
            // A worker whose first load hangs is ended, with the requests it holds (on HTTP/1.1
            // they can starve the page's own): the server answers for this page.
            if (err.stalled && !this.loadedHere) this.fail(err.message);
            throw err;
          }
          if (err.threads > 1 && err.phase !== 'download') {
            write(THREADS_KEY, { threads: 1, reason: err.message });
          }
          console.warn('pix2pix: ' + err.message + '; trying again on one thread');
          this.restart();
        }
      }
    },
    // Download `model`'s ONNX file and create its session (once per model while it is kept;
    // url: the export, whose ?v= names the weights; stages: the URLs of its stages, or none).
    // The model becomes the shown one (show()). Resolves to {backend, threads, ms, downloadMs,
    // sessionMs}.
    load(model, url, size, stages) {
      if (!this.models.has(model)) {
        const msg = { type: 'load', model, url: abs(url), size, stages: (stages || []).map(abs) };
        this.models.set(model, { msg, loaded: null, settled: Promise.resolve() });
        if (this.default === null) this.default = model;
      }
      this.show(model);
      return this.ensure(this.models.get(model));
    },
    // The model's load, posted again when its sessions were released.
    ensure(m) {
      if (!m.loaded) {
        const big = this.hasServer && smallDevice() ? limits.bigModelBytes : 0;
        const msg = Object.assign({}, m.msg, { maxBytes: big });
        m.loaded = m.settled.then(() => this.attempt(msg)).then((info) => {
          this.mark('session');
          return info;
        });
        m.loaded.catch(() => {});  // whoever awaits it reports the failure
      }
      return m.loaded;
    },
    // The visitor now shows `model`: release the sessions of every other model but the default.
    show(model) {
      this.shown = model;
      for (const [name, m] of this.models) {
        if (name === model || name === this.default || !m.loaded) continue;
        const loaded = m.loaded;
        m.loaded = null;
        m.settled = loaded.then(() => this.call({ type: 'release', model: name }))
          .then(() => {}, () => {});
      }
    },
    // What the worker holds: {created, released (sessions, all time), models, heldBytes, threads}.
    memory() {
      return this.call({ type: 'stats' });
    },
    // image: ImageData-like {width, height, data}. Resolves to {pixels, ms, ...}, or to
    // {superseded: true} when supersede() was called before the run's last stage. A model whose
    // sessions were released is loaded again first.
    run(model, image) {
      const copy = new Uint8ClampedArray(image.data);
      const generation = this.generation ? Atomics.load(this.generation, 0) : undefined;
      const m = this.models.get(model);
      const post = () => this.call(
        { type: 'run', model, width: image.width, height: image.height, rgba: copy, generation },
        [copy.buffer],
      );
      return m ? this.ensure(m).then(post) : post();
    },
    // Drop the runs posted so far (each stops at its next stage boundary and resolves to
    // {superseded: true}); false where runs cannot be dropped (the page is not isolated).
    supersede() {
      if (!this.generation) return false;
      Atomics.add(this.generation, 0, 1);
      return true;
    },
    // The remembered choice for `model` measured on the export `file` on this device, or null.
    recall(model, file) {
      const m = read(memoryKey(model));
      return fresh(m) && m.file === file ? m : null;
    },
    memoryDays: MEMORY_DAYS,
    // Remember `model`'s choice `c` ({where, browserMs, serverMs}); false when storage refused it.
    remember(model, file, c) {
      const { where, browserMs, serverMs } = c;
      return write(memoryKey(model), { where, browserMs, serverMs, file });
    },
    // How long a run of `model` takes from this page (message to the worker, model run, answer):
    // one untimed run (the first allocates), then the best of `runs`; a busy page (still
    // loading, say) only ever adds time. A model's run time does not depend on the pixels, so a
    // blank image stands in for the drawing. Once per model; resolves to {ms, backend}.
    time(model, size, runs = 2) {
      if (!this.timings.has(model)) {
        const image = { width: size, height: size, data: new Uint8ClampedArray(4 * size * size) };
        image.data.fill(255);
        const timed = (async () => {
          await this.run(model, image);
          this.mark('warmup');
          let best = null, backend = null;
          for (let i = 0; i < runs; i++) {
            const t0 = performance.now();
            const res = await this.run(model, image);
            const ms = performance.now() - t0;
            best = best === null ? ms : Math.min(best, ms);
            backend = res.backend;
          }
          this.mark('timed');
          return { ms: best, backend };
        })();
        timed.catch(() => {});  // whoever awaits it reports the failure
        this.timings.set(model, timed);
      }
      return this.timings.get(model);
    },
  };
  self.p2pSharedEngine = engine;
  return engine;
}

// Start the runtime and the default model as early as the page allows: `url` answers with the
// default model's canvas settings ({model, size, browser} or {} while nothing can run here).
// Failures are left for the canvas to meet and report: it makes the same calls later.
function p2pPreload(url) {
  'use strict';
  const engine = p2pEngine();
  engine.hasServer = true;  // only the app's head calls this: its server answers meanwhile
  engine.mark('preload');
  fetch(url).then((r) => (r.ok ? r.json() : {})).then((s) => {
    if (!s || !s.browser || !s.model) return;
    const memory = engine.recall(s.model, s.browser.onnx);
    if (memory && memory.where === 'server') return;  // measured before: the server is faster
    engine.start(s.browser);
    engine.load(s.model, s.browser.onnx, s.size, s.browser.stages).then(
      () => engine.time(s.model, s.size), () => {});
  }, () => {});
}
