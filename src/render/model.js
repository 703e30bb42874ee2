// The page of a whole network. window.convmaps.layers() lists every node
// that ran, in order: {name, op, shape, parameters, folder, reads}, as
// summary.json's nodes have them; window.convmaps.top() gives a
// classifier's top classes: [{index, label, probability}]. With
// #model-check, both are written into the title, for the tests.
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('convmaps-model').textContent);

  function layers() {
    return data.layers.map(function (layer) {
      return {
        name: layer.name,
        op: layer.op,
        shape: layer.shape.slice(),
        parameters: layer.parameters,
        folder: layer.folder,
        reads: layer.reads.slice()
      };
    });
  }

  function top() {
    return data.top.map(function (entry) {
      return { index: entry.index, label: entry.label, probability: entry.probability };
    });
  }

  window.convmaps = Object.assign(window.convmaps || {}, { layers: layers, top: top });
  if (window.location.hash === '#model-check') {
    document.title = 'model ' + JSON.stringify({ layers: layers(), top: top() });
  }
})();
