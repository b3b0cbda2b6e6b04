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
/* exported p2pEngine, p2pPreload */

function p2pEngine() {
  'use strict';
  if (self.p2pSharedEngine) return self.p2pSharedEngine;
  const abs = (u) => new URL(u, document.baseURI).href;
  // A choice measured on this device is remembered in localStorage per model, with the exact
  // export it was measured on (its URL names the weights) and the device (browser, cores, whether
  // threads are on); another file, another device or a week's age and it is measured again.
  const MEMORY_DAYS = 7;
  const device = () => [navigator.userAgent, navigator.hardwareConcurrency || 0,
    self.crossOriginIsolated ? 'isolated' : 'plain'].join(' | ');
  const memoryKey = (model) => 'pix2pix-where:' + model;
  const engine = {
    worker: null, failed: null, seq: 0, waiting: new Map(), loads: new Map(), timings: new Map(),
    info: null, marks: {}, onfail: null,
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
      try {
        this.worker = new Worker(abs(b.worker));
      } catch (err) {
        this.fail('the worker did not start (' + (err.message || err) + ')');
        return;
      }
      this.mark('worker');
      this.worker.onmessage = (e) => this.answer(e.data);
      this.worker.onerror = (e) => { e.preventDefault(); this.fail(e.message || 'worker error'); };
      const cancel = this.generation ? this.generation.buffer : null;
      this.call({ type: 'init', ort: abs(b.ort), webgpu: b.webgpu !== false, cancel }).then(
        (info) => { this.info = info; this.mark('runtime'); },
        (err) => this.fail(err.message),
      );
    },
    fail(message) {
      if (this.failed) return;
      this.failed = message;
      for (const { reject } of this.waiting.values()) reject(new Error(message));
      this.waiting.clear();
      if (this.worker) this.worker.terminate();
      this.worker = null;
      if (this.onfail) this.onfail(message);
    },
    call(msg, transfer) {
      if (this.failed) return Promise.reject(new Error(this.failed));
      if (!this.worker) return Promise.reject(new Error('the runtime was not started'));
      const id = ++this.seq;
      return new Promise((resolve, reject) => {
        this.waiting.set(id, { resolve, reject });
        this.worker.postMessage(Object.assign({ id }, msg), transfer || []);
      });
    },
    answer(m) {
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      if (m.error) w.reject(new Error(m.error)); else w.resolve(m);
    },
    // Download `model`'s ONNX file and create its session (once per model; url: the export, whose
    // ?v= names the weights; stages: the URLs of its stages, or none). Resolves to
    // {backend, threads, ms, downloadMs, sessionMs}.
    load(model, url, size, stages) {
      if (!this.loads.has(model)) {
        const msg = { type: 'load', model, url: abs(url), size, stages: (stages || []).map(abs) };
        const loaded = this.call(msg).then((info) => {
          this.mark('session');
          return info;
        });
        loaded.catch(() => {});  // whoever awaits it reports the failure
        this.loads.set(model, loaded);
      }
      return this.loads.get(model);
    },
    // image: ImageData-like {width, height, data}. Resolves to {pixels, ms, ...}, or to
    // {superseded: true} when supersede() was called before the run's last stage.
    run(model, image) {
      const copy = new Uint8ClampedArray(image.data);
      const generation = this.generation ? Atomics.load(this.generation, 0) : undefined;
      return this.call(
        { type: 'run', model, width: image.width, height: image.height, rgba: copy, generation },
        [copy.buffer],
      );
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
      try {
        const m = JSON.parse(localStorage.getItem(memoryKey(model)) || 'null');
        const fresh = m && Date.now() - m.at < MEMORY_DAYS * 864e5;
        return fresh && m.file === file && m.device === device() ? m : null;
      } catch (err) {
        return null;  // storage switched off, or an entry that is not ours
      }
    },
    memoryDays: MEMORY_DAYS,
    // Remember `model`'s choice `c` ({where, browserMs, serverMs}); false when storage refused it.
    remember(model, file, c) {
      try {
        localStorage.setItem(memoryKey(model), JSON.stringify({
          where: c.where, browserMs: c.browserMs, serverMs: c.serverMs,
          file, device: device(), at: Date.now(),
        }));
        return true;
      } catch (err) {
        return false;  // storage full or switched off: measured again next time
      }
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
