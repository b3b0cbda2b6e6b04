// The static site's page (pix2pix/site.py writes index.html around it): a model picker, example
// thumbnails and the live canvas (canvas.js), with every model running in the visitor's browser.
// No server: `props` and `watch` stand in for what Gradio gives the canvas in the app.
/* global pix2pixCanvas */
'use strict';

(function main() {
  const models = JSON.parse(document.getElementById('p2p-models').textContent);
  const element = document.getElementById('p2p-canvas');
  const picker = document.getElementById('p2p-model');
  const about = document.getElementById('p2p-about');
  const examples = document.getElementById('p2p-examples');
  const watchers = {};
  const props = { settings: null, load: null, value: '' };
  const watch = (name, callback) => { (watchers[name] = watchers[name] || []).push(callback); };
  const set = (name, value) => {
    props[name] = value;
    for (const callback of watchers[name] || []) callback();
  };

  for (const m of models) {
    const option = document.createElement('option');
    option.value = m.model;
    option.textContent = m.name;
    picker.append(option);
  }

  function show(id) {
    const m = models.find((x) => x.model === id) || models[0];
    const parts = [m.task, m.size + '×' + m.size + ' px'];
    if (m.dataset) parts.push('trained on ' + m.dataset);
    if (m.license) parts.push('licence: ' + m.license);
    about.textContent = parts.filter(Boolean).join(' · ');
    examples.replaceChildren(...(m.examples || []).map((url, i) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'p2p-example';
      b.title = 'Load example ' + (i + 1) + ' into the canvas';
      const img = document.createElement('img');
      img.src = url;
      img.alt = 'Example ' + (i + 1);
      b.append(img);
      b.addEventListener('click', () => set('load', { url, nonce: Date.now() }));
      return b;
    }));
    return m;
  }

  picker.addEventListener('change', () => set('settings', show(picker.value)));
  props.settings = show(models[0].model);
  pix2pixCanvas(element, props, null, watch);
})();
