// The page of a whole network. window.convmaps.layers() lists every node
// that ran, in order: {name, op, shape, parameters, folder, reads}, as
// summary.json's nodes have them; window.convmaps.top() gives a
// classifier's top classes: [{index, label, probability}];
// window.convmaps.receptiveField(name, x, y) the photo pixels {x0, y0, x1,
// y1} (inclusive, clipped) that pixel (x, y) of a node's maps depends on,
// from the field summary.json gives (net/field.rs computes it). Hovering a
// node's grid of maps frames that field on the photo. With #model-check,
// the layers, the top classes and a few fields go into the title, for the
// tests.
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

  function layerNamed(name) {
    return data.layers.filter(function (layer) { return layer.name === name; })[0];
  }

  // One axis of a field: pixel p covers p·jump + start … + size − 1,
  // clipped to the input's `size` pixels (as Field::rectangle).
  function span(field, axis, p, size) {
    var first = p * field.jump[axis] + field.start[axis];
    var last = first + field.size[axis] - 1;
    var clip = function (v) { return Math.min(Math.max(v, 0), size - 1); };
    return [clip(Math.floor(first)), clip(Math.ceil(last))];
  }

  function receptiveField(name, x, y) {
    var layer = layerNamed(name);
    if (!layer || !layer.field) { return null; }
    var rows = span(layer.field, 0, y, data.input[0]);
    var columns = span(layer.field, 1, x, data.input[1]);
    return { x0: columns[0], y0: rows[0], x1: columns[1], y1: rows[1] };
  }

  // The map and pixel of a grid picture under the pointer, or null in a gap.
  function pixelUnder(grid, image, event) {
    var box = image.getBoundingClientRect();
    var px = (event.clientX - box.left) * grid.width / box.width;
    var py = (event.clientY - box.top) * grid.height / box.height;
    var column = Math.floor((px - grid.gap) / (grid.cellWidth + grid.gap));
    var row = Math.floor((py - grid.gap) / (grid.cellHeight + grid.gap));
    var inX = px - grid.gap - column * (grid.cellWidth + grid.gap);
    var inY = py - grid.gap - row * (grid.cellHeight + grid.gap);
    var map = row * grid.columns + column;
    if (inX < 0 || inY < 0 || inX >= grid.cellWidth || inY >= grid.cellHeight || map >= grid.maps) {
      return null;
    }
    return {
      x: Math.floor(inX * grid.mapWidth / grid.cellWidth),
      y: Math.floor(inY * grid.mapHeight / grid.cellHeight)
    };
  }

  // Frames `field` on the photo, or hides the frame.
  function frame(field) {
    var box = document.getElementById('convmaps-field');
    var photo = document.getElementById('convmaps-input');
    if (!box || !photo) { return; }
    if (!field) { box.hidden = true; return; }
    var scaleX = photo.clientWidth / data.input[1];
    var scaleY = photo.clientHeight / data.input[0];
    box.style.left = (field.x0 * scaleX) + 'px';
    box.style.top = (field.y0 * scaleY) + 'px';
    box.style.width = ((field.x1 - field.x0 + 1) * scaleX) + 'px';
    box.style.height = ((field.y1 - field.y0 + 1) * scaleY) + 'px';
    box.hidden = false;
  }

  function followPointer(image) {
    var layer = layerNamed(image.getAttribute('data-grid'));
    if (!layer || !layer.grid || !layer.field) { return; }
    image.addEventListener('mousemove', function (event) {
      var at = pixelUnder(layer.grid, image, event);
      frame(at && receptiveField(layer.name, at.x, at.y));
    });
    image.addEventListener('mouseleave', function () { frame(null); });
  }

  Array.prototype.forEach.call(document.querySelectorAll('img[data-grid]'), followPointer);

  window.convmaps = Object.assign(window.convmaps || {}, {
    layers: layers,
    top: top,
    receptiveField: receptiveField
  });
  // For the tests: the pointer over pixel (0, 0) of the first map of the
  // first grid, and the frame it draws on the photo.
  function hoverCheck() {
    var image = document.querySelector('img[data-grid]');
    var layer = image && layerNamed(image.getAttribute('data-grid'));
    if (!layer || !layer.grid) { return null; }
    var grid = layer.grid;
    var box = image.getBoundingClientRect();
    var x = box.left + (grid.gap + 0.5 * grid.cellWidth / grid.mapWidth) * box.width / grid.width;
    var y = box.top + (grid.gap + 0.5 * grid.cellHeight / grid.mapHeight) * box.height / grid.height;
    image.dispatchEvent(new MouseEvent('mousemove', { clientX: x, clientY: y }));
    var frameBox = document.getElementById('convmaps-field');
    var photo = document.getElementById('convmaps-input');
    return {
      hidden: frameBox.hidden,
      left: parseFloat(frameBox.style.left),
      width: parseFloat(frameBox.style.width),
      photoWidth: photo.clientWidth
    };
  }

  if (window.location.hash === '#model-check') {
    var first = data.layers.filter(function (layer) { return layer.field && layer.folder; })[0];
    var fields = first ? [receptiveField(first.name, 0, 0), receptiveField(first.name, 5, 5)] : [];
    document.title = 'model ' + JSON.stringify({
      layers: layers(),
      top: top(),
      fields: { name: first && first.name, at: fields },
      hovered: hoverCheck()
    });
  }
})();
