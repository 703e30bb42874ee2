// The page as an explorer of its layers: window.convmaps.layers() lists
// them, window.convmaps.receptiveField(name, x, y) gives the photo pixels a
// value of a layer's maps depends on, and hovering a layer's grid draws
// that rectangle on the photo. Clicking a map in a grid (or
// window.convmaps.openMap(name, k)) opens it large with its colour bar,
// its values' range and its filter's bias; on a stack's page also its
// filter one input channel at a time and, under the pointer, the value as
// its arithmetic (arithmetic.js; window.convmaps.arithmetic(name, k, x, y)).
// The same walk back through every step's
// window as graph::field in the native code. index.html#explore-check
// writes layers() and a few fields into the title, for the tests;
// index.html#open=<layer>/<k>[@<x>,<y>] opens map k of that layer.
(function () {
  'use strict';

  var graph = JSON.parse(document.getElementById('convmaps-graph').textContent);

  function layerNamed(name) {
    for (var i = 0; i < graph.layers.length; i++) {
      if (graph.layers[i].name === name) { return graph.layers[i]; }
    }
    return null;
  }

  // The input pixels (clipped to 0..size) that outputs first..last read
  // through one step's window along one axis.
  function reads(window, span, size) {
    var first = span[0] * window.stride - window.pad;
    var last = span[1] * window.stride - window.pad + window.extent - 1;
    return [Math.max(first, 0), Math.min(last, size - 1)];
  }

  function receptiveField(name, x, y) {
    var layer = layerNamed(name);
    if (!layer) { return null; }
    var rows = [y, y], columns = [x, x];
    for (var i = layer.lastStep; i >= 0; i--) {
      var step = graph.steps[i];
      rows = reads(step.rows, rows, step.input[1]);
      columns = reads(step.columns, columns, step.input[2]);
      if (rows[0] > rows[1] || columns[0] > columns[1]) { return null; }
    }
    return { x0: columns[0], y0: rows[0], x1: columns[1], y1: rows[1] };
  }

  function layers() {
    return graph.layers.map(function (layer) {
      return { name: layer.name, op: layer.op, shape: layer.shape, parameters: layer.parameters };
    });
  }

  // The value under the pointer in the picture of one map, `map`.
  function valueInMap(grid, map, image, event) {
    var box = image.getBoundingClientRect();
    var x = Math.floor((event.clientX - box.left) * grid.mapWidth / box.width);
    var y = Math.floor((event.clientY - box.top) * grid.mapHeight / box.height);
    var inside = x >= 0 && x < grid.mapWidth && y >= 0 && y < grid.mapHeight;
    return inside ? { map: map, x: x, y: y } : null;
  }

  // Draws `field` (input pixels) over the photo, in percent of its size,
  // and says it in the caption (a tensor input's picture gets the caption
  // alone).
  function showField(field, note) {
    var frame = document.getElementById('convmaps-field');
    var caption = document.getElementById('convmaps-field-note');
    if (caption) { caption.textContent = note; }
    if (!frame) { return; }
    frame.hidden = !field;
    if (!field) { return; }
    var width = graph.input[2], height = graph.input[1];
    frame.style.left = (100 * field.x0 / width) + '%';
    frame.style.top = (100 * field.y0 / height) + '%';
    frame.style.width = (100 * (field.x1 - field.x0 + 1) / width) + '%';
    frame.style.height = (100 * (field.y1 - field.y0 + 1) / height) + '%';
  }

  function decodeColours(text) {
    var bytes = atob(text), colours = [];
    for (var i = 0; i + 2 < bytes.length; i += 3) {
      colours.push('rgb(' + bytes.charCodeAt(i) + ',' + bytes.charCodeAt(i + 1) + ',' + bytes.charCodeAt(i + 2) + ')');
    }
    return colours;
  }

  function element(tag, text, className) {
    var node = document.createElement(tag);
    if (text) { node.textContent = text; }
    if (className) { node.className = className; }
    return node;
  }

  function formatValue(value) {
    return value === null || value === undefined ? 'none' : String(Number(value.toPrecision(5)));
  }

  // The colour map from the low end of `range` to its high end, labelled
  // with both (and with 0 where the range spans it).
  function colourBar(range) {
    var bar = element('div', '', 'colour-bar');
    var canvas = element('canvas');
    var colours = decodeColours(graph.colours);
    canvas.width = colours.length;
    canvas.height = 12;
    var context = canvas.getContext('2d');
    colours.forEach(function (colour, i) { context.fillStyle = colour; context.fillRect(i, 0, 1, 12); });
    bar.appendChild(canvas);
    var labels = element('div', '', 'colour-labels');
    labels.appendChild(element('span', formatValue(range[0])));
    if (range[0] < 0 && range[1] > 0) { labels.appendChild(element('span', '0')); }
    labels.appendChild(element('span', formatValue(range[1])));
    bar.appendChild(labels);
    return bar;
  }

  // ---------------------------------------------------------- arithmetic

  var convs = {};

  // The decoded conv of `layer`, or null where the page embeds none.
  // A one-layer page's live part gives its conv with the preview's exact
  // values, where the preview is the run's input.
  function convOf(layer) {
    if (!layer) { return null; }
    if (!convs[layer.name] && layer.conv && graph.inputs) {
      convs[layer.name] = ConvmapsArithmetic.readConv(layer.conv, graph.inputs);
    }
    if (!convs[layer.name] && graph.layers.length === 1 && window.convmaps.runConv) {
      var conv = window.convmaps.runConv();
      if (conv.shape[1] === graph.input[1] && conv.shape[2] === graph.input[2]) { convs[layer.name] = conv; }
    }
    return convs[layer.name] || null;
  }

  // Value (x, y) of map k of layer `name` as its arithmetic, or null:
  // {x, y, sums: {channels: [{channel, sum}], bias, total}, value}.
  function arithmetic(name, k, x, y) {
    var conv = convOf(layerNamed(name));
    if (!conv || k < 0 || k >= conv.filters) { return null; }
    return ConvmapsArithmetic.evaluate(conv, k, x, y);
  }



  // Opens map `k` of layer `name` large in the detail panel (detail.js);
  // returns what it shows, or null when there is no such map.
  function openMap(name, k) {
    var layer = layerNamed(name);
    var map = layer && layer.maps[k];
    var panel = document.getElementById('convmaps-detail');
    if (!map || !panel) { return null; }
    panel.detail = ConvmapsDetail.open({
      panel: panel, title: layer.name + ' map ' + k, file: map.file, bar: colourBar(map.range),
      stats: 'min ' + formatValue(map.min) + ', max ' + formatValue(map.max) + ', mean ' + formatValue(map.mean) +
        '; bias ' + formatValue(map.bias) + '; ' + graph.colormap + ' from ' + formatValue(map.range[0]) + ' to ' +
        formatValue(map.range[1]),
      conv: convOf(layer), noArithmetic: layer.noArithmetic, k: k, width: layer.shape[2], height: layer.shape[1],
      table: ConvmapsView.decodeBase64(graph.colours), range: map.range,
      frame: function (x, y) {
        var field = x === null ? null : receptiveField(layer.name, x, y);
        showField(field, x === null ? '' : fieldNote(layer, { map: k, x: x, y: y }, field));
      }
    });
    return { name: layer.name, map: k, file: map.file, min: map.min, max: map.max, mean: map.mean,
      bias: map.bias, range: map.range };
  }

  // Opens map k of layer `name` with its filter's editor: {values(),
  // setBias(v), setWeight(channel, y, x, v), reset()}, or null where the
  // page embeds no copies of the conv.
  function editFilter(name, k) {
    if (!openMap(name, k)) { return null; }
    var edit = document.getElementById('convmaps-detail').detail.edit;
    return edit ? edit() : null;
  }

  // What a value's field says in words.
  function fieldNote(layer, value, field) {
    var at = layer.name + ' map ' + value.map + ' at (' + value.x + ', ' + value.y + ')';
    return field
      ? at + ' reads the ' + (graph.photo ? 'photo' : 'input') + '\'s x ' + field.x0 + '–' + field.x1 + ', y ' + field.y0 + '–' + field.y1
      : at + ' reads only zero padding';
  }

  function follow(image) {
    var layer = layerNamed(image.dataset.layer);
    if (!layer) { return; }
    var map = image.dataset.map === undefined ? null : Number(image.dataset.map);
    image.addEventListener('mousemove', function (event) {
      var value = map === null
        ? ConvmapsView.gridPixel(layer.grid, image, event)
        : valueInMap(layer.grid, map, image, event);
      if (!value) { showField(null, ''); return; }
      var field = receptiveField(layer.name, value.x, value.y);
      showField(field, fieldNote(layer, value, field));
    });
    image.addEventListener('mouseleave', function () { showField(null, ''); });
    if (map === null) {
      image.addEventListener('click', function (event) {
        var value = ConvmapsView.gridPixel(layer.grid, image, event);
        if (value) { event.preventDefault(); openMap(layer.name, value.map); }
      });
    }
  }

  // Where the pointer is over the grid of `layer`, at the middle of map
  // `map`'s cell, as an event would say it.
  function pointerAtCell(layer, image, map) {
    var grid = layer.grid, box = image.getBoundingClientRect();
    var column = map % grid.columns, row = Math.floor(map / grid.columns);
    var px = grid.gap + column * (grid.cellWidth + grid.gap) + grid.cellWidth / 2;
    var py = grid.gap + row * (grid.cellHeight + grid.gap) + grid.cellHeight / 2;
    return { clientX: box.left + px * box.width / grid.width, clientY: box.top + py * box.height / grid.height };
  }

  // For the tests: the editor of the last embedded conv's map 0 gives the
  // run's map (a few values, to hold against features.npy), moves every
  // value by δ when its bias moves by δ (a conv with no steps after it),
  // and Reset brings the map back.
  function editCheck() {
    var layer = graph.layers.filter(function (candidate) { return convOf(candidate); }).pop();
    return layer ? ConvmapsDetail.check(editFilter(layer.name, 0), layer.name, layer.shape[2]) : null;
  }

  // For the tests: layers(), the fields of each layer's corners and
  // centre, and the value the pointer finds at the middle of each layer's
  // last map in its grid picture.
  function check() {
    var fields = [], hovered = [];
    var images = document.querySelectorAll('img[data-layer]:not([data-map])');
    for (var i = 0; i < images.length; i++) {
      var layer = layerNamed(images[i].dataset.layer);
      var last = layer.grid.maps - 1;
      hovered.push({ name: layer.name, value: ConvmapsView.gridPixel(layer.grid, images[i], pointerAtCell(layer, images[i], last)) });
    }
    graph.layers.forEach(function (layer) {
      var width = layer.shape[2], height = layer.shape[1];
      [[0, 0], [width - 1, height - 1], [Math.floor(width / 2), Math.floor(height / 2)]].forEach(function (at) {
        fields.push({ name: layer.name, x: at[0], y: at[1], field: receptiveField(layer.name, at[0], at[1]) });
      });
    });
    var maps = document.querySelectorAll('img[data-map]');
    for (var j = 0; j < maps.length; j++) {
      var box = maps[j].getBoundingClientRect(), mapLayer = layerNamed(maps[j].dataset.layer);
      var middle = { clientX: box.left + box.width / 2, clientY: box.top + box.height / 2 };
      hovered.push({ name: mapLayer.name, value: valueInMap(mapLayer.grid, Number(maps[j].dataset.map), maps[j], middle) });
    }
    var last = graph.layers[graph.layers.length - 1];
    var sums = [];
    graph.layers.filter(function (layer) { return convOf(layer); }).forEach(function (layer) {
      var w = layer.shape[2], h = layer.shape[1];
      [0, layer.shape[0] - 1].forEach(function (k) {
        [[0, 0], [w - 1, h - 1], [w >> 1, h >> 1]].forEach(function (p) {
          sums.push({ name: layer.name, map: k, x: p[0], y: p[1], value: arithmetic(layer.name, k, p[0], p[1]).value });
        });
      });
    });
    var edited = editCheck();
    var opened = openMap(last.name, last.maps.length - 1);
    var shown = document.querySelector('#convmaps-detail img');
    var overlay = document.querySelector('img.map-overlay');
    document.title = 'explore ' + JSON.stringify({ layers: layers(), fields: fields, hovered: hovered,
      opened: opened, shown: shown && shown.getAttribute('src'), sums: sums, edited: edited, view: strips.check(),
      overlay: overlay && overlay.getAttribute('src'),
      without: graph.layers.filter(function (layer) { return layer.noArithmetic; }).map(function (layer) { return layer.name; }) });
  }

  // Each layer's strip of thumbnails above its pictures, and the switches
  // above the first layer with a strip (strips.js).
  function placeStrip(layer, node) {
    if (!layer) {
      var first = document.querySelector('figure.strip');
      var section = first && first.closest('.stack-layer');
      if (section) { section.parentNode.insertBefore(node, section); }
      return;
    }
    var image = document.querySelector('img[data-layer="' + CSS.escape(layer.name) + '"]');
    var pictures = image && (image.closest('.pictures') || image.parentNode);
    if (pictures) { pictures.parentNode.insertBefore(node, pictures); }
  }

  var strips = ConvmapsStrips.start(graph.layers, graph.view, placeStrip);

  // The stack's self-test (detail.js), on the values the run embedded.
  function selftest() {
    var checked = graph.layers.filter(function (layer) { return layer.conv && layer.conv.run; }).map(function (layer) {
      return { name: layer.name, conv: convOf(layer), run: layer.conv.run };
    });
    return Promise.resolve(ConvmapsDetail.selftest(checked, strips, editCheck));
  }

  // A one-layer page's live part defines setView and selftest for its live
  // maps; a stack's page has its own.
  if (graph.layers.some(function (layer) { return layer.strip; })) {
    window.convmaps = Object.assign(window.convmaps || {}, { setView: strips.setView, selftest: selftest });
    if (location.hash === '#selftest') {
      window.addEventListener('load', function () { selftest().then(function (verdict) { document.title = verdict; }); });
    }
  }

  window.convmaps = Object.assign(window.convmaps || {}, {
    layers: layers,
    receptiveField: receptiveField,
    openMap: openMap,
    arithmetic: arithmetic,
    editFilter: editFilter
  });
  var images = document.querySelectorAll('img[data-layer]');
  for (var i = 0; i < images.length; i++) { follow(images[i]); }
  if (location.hash === '#explore-check') { window.addEventListener('load', check); }
  // index.html#open=<layer>/<k>[@<x>,<y>] opens map k of that layer once
  // the page is up (and shows pixel (x, y)'s field and arithmetic).
  var open = /^#open=(.+)\/([0-9]+)(?:@([0-9]+),([0-9]+))?$/.exec(location.hash);
  if (open) {
    window.addEventListener('load', function () {
      var name = decodeURIComponent(open[1]), shown = openMap(name, Number(open[2]));
      if (shown && open[3] !== undefined) {
        document.getElementById('convmaps-detail').detail.showAt(Number(open[3]), Number(open[4]));
      }
    });
  }
})();
