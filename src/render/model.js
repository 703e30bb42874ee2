// The page of a whole network. window.convmaps.layers() lists every node
// that ran, in order: {name, op, shape, parameters, folder, reads}, as
// summary.json's nodes have them; window.convmaps.top() gives a
// classifier's top classes: [{index, label, probability}];
// window.convmaps.receptiveField(name, x, y) the photo pixels {x0, y0, x1,
// y1} (inclusive, clipped) that pixel (x, y) of a node's maps depends on,
// from the field summary.json gives (net/field.rs computes it). Hovering a
// node's grid of maps frames that field on the photo. Clicking a map (or
// window.convmaps.openMap(name, k)) opens it large with its colour bar and
// statistics; for a conv whose copies the page embeds, also its filter one
// input channel at a time and, under the pointer, the value as its
// arithmetic (window.convmaps.arithmetic(name, k, x, y) gives the sums).
// With #model-check, the layers, the top classes, a few fields and sums go
// into the title, for the tests; #open=<node>/<k>[@<x>,<y>] opens a map
// (and shows that pixel's arithmetic).
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
      var at = ConvmapsView.gridPixel(layer.grid, image, event);
      frame(at && receptiveField(layer.name, at.x, at.y));
    });
    image.addEventListener('mouseleave', function () { frame(null); });
    image.addEventListener('click', function (event) {
      var at = ConvmapsView.gridPixel(layer.grid, image, event);
      if (at) { event.preventDefault(); openMap(layer.name, at.map); }
    });
  }

  // ---------------------------------------------------------- one map

  var convs = {};

  // The decoded conv of node `name`, or null where the page has none.
  function convOf(name) {
    var layer = layerNamed(name);
    if (!layer || !layer.conv) { return null; }
    if (!convs[name]) { convs[name] = ConvmapsArithmetic.readConv(layer.conv, data.inputs); }
    return convs[name];
  }

  // Value (x, y) of map k of node `name` as its arithmetic, or null:
  // {x, y, sums: {channels: [{channel, sum}], bias, total}, value}.
  function arithmetic(name, k, x, y) {
    var conv = convOf(name);
    if (!conv || k < 0 || k >= conv.filters) { return null; }
    return ConvmapsArithmetic.evaluate(conv, k, x, y);
  }

  // The file of map k of `count`, as the native run names it.
  function featureFile(k, count) {
    var digits = Math.max(2, String(count - 1).length), text = String(k);
    while (text.length < digits) { text = '0' + text; }
    return 'feature_' + text + '.png';
  }

  function format(value) { return String(Number(value.toPrecision(5))); }

  // The range the run drew `map` ([min, max, mean]) of `layer` over, as
  // Normalize::range works it out: its own, all the layer's maps', or the
  // fixed one; centred on zero for a diverging colour map.
  function drawnRange(layer, map) {
    var all = layer.maps.reduce(function (a, m) { return [Math.min(a[0], m[0]), Math.max(a[1], m[1])]; }, [Infinity, -Infinity]);
    var view = { normalize: ConvmapsView.parseNormalize(data.view.normalize) };
    return ConvmapsView.rangeFor(view, [map[0], map[1]], all, data.view.diverging.indexOf(data.view.colormap) >= 0);
  }

  // Opens map k of node `name` large (detail.js): its picture, colour bar
  // and statistics, and for an embedded conv its bias, filter, arithmetic
  // and editor. Returns what it shows, or null when there is no such map.
  function openMap(name, k) {
    var layer = layerNamed(name), panel = document.getElementById('convmaps-detail');
    var map = layer && layer.maps && layer.maps[k];
    if (!map || !panel || !layer.folder) { return null; }
    var conv = convOf(name), table = ConvmapsView.decodeBase64(data.colours), range = drawnRange(layer, map);
    var bias = conv && conv.bias ? conv.bias[k] : null;
    var file = layer.folder + '/' + featureFile(k, layer.maps.length);
    panel.detail = ConvmapsDetail.open({
      panel: panel, title: name + ' map ' + k, file: file,
      bar: ConvmapsView.colourBar(table, range, data.colormap + ', as the run drew it'),
      stats: 'min ' + format(map[0]) + ', max ' + format(map[1]) + ', mean ' + format(map[2]) +
        (bias === null ? '' : '; bias ' + format(bias)),
      conv: conv, noArithmetic: layer.noArithmetic, k: k, width: layer.grid.mapWidth, height: layer.grid.mapHeight,
      table: table, range: range,
      frame: function (x, y) { frame(x === null ? null : receptiveField(name, x, y)); }
    });
    return { name: name, map: k, file: file, min: map[0], max: map[1], mean: map[2], bias: bias };
  }

  // Opens map k of node `name` with its filter's editor (detail.js), or
  // null where the page embeds no copies of the conv.
  function editFilter(name, k) {
    if (!openMap(name, k)) { return null; }
    var edit = document.getElementById('convmaps-detail').detail.edit;
    return edit ? edit() : null;
  }

  Array.prototype.forEach.call(document.querySelectorAll('img[data-grid]'), followPointer);

  // Each node's strip of thumbnails above its pictures, and the switches
  // above the first node's maps (strips.js).
  function placeStrip(layer, node) {
    var sections = document.querySelectorAll('div.stack-layer[data-node]');
    if (!layer) {
      if (sections.length) { sections[0].parentNode.insertBefore(node, sections[0]); }
      return;
    }
    var section = Array.prototype.filter.call(sections, function (s) { return s.dataset.node === layer.name; })[0];
    var pictures = section && section.querySelector('.pictures');
    if (pictures) { section.insertBefore(node, pictures); }
  }

  var strips = ConvmapsStrips.start(data.layers, data.view, placeStrip);

  // The editor of the last embedded conv's map 0, checked (detail.js).
  function editCheck() {
    var embedded = data.layers.filter(function (layer) { return layer.conv; }).pop();
    return embedded ? ConvmapsDetail.check(editFilter(embedded.name, 0), embedded.name, embedded.grid.mapWidth) : null;
  }

  // The page's self-test (detail.js), on the values the run embedded.
  function selftest() {
    var checked = data.layers.filter(function (layer) { return layer.conv && layer.conv.run; }).map(function (layer) {
      return { name: layer.name, conv: convOf(layer.name), run: layer.conv.run };
    });
    return Promise.resolve(ConvmapsDetail.selftest(checked, strips, editCheck));
  }

  window.convmaps = Object.assign(window.convmaps || {}, {
    layers: layers,
    top: top,
    receptiveField: receptiveField,
    openMap: openMap,
    arithmetic: arithmetic,
    editFilter: editFilter,
    setView: strips.setView,
    selftest: selftest
  });
  if (window.location.hash === '#selftest') {
    selftest().then(function (verdict) { document.title = verdict; });
  }
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

  // For the tests: the value of each embedded conv's first and last map at
  // its corners and centre, as the page sums it.
  function sumsCheck() {
    var checked = [];
    data.layers.filter(function (layer) { return layer.conv; }).forEach(function (layer) {
      var w = layer.grid.mapWidth, h = layer.grid.mapHeight;
      [0, layer.grid.maps - 1].forEach(function (k) {
        [[0, 0], [w - 1, h - 1], [w >> 1, h >> 1]].forEach(function (p) {
          checked.push({ name: layer.name, map: k, x: p[0], y: p[1], value: arithmetic(layer.name, k, p[0], p[1]).value });
        });
      });
    });
    return checked;
  }

  if (window.location.hash === '#model-check') {
    var first = data.layers.filter(function (layer) { return layer.field && layer.folder; })[0];
    var fields = first ? [receptiveField(first.name, 0, 0), receptiveField(first.name, 5, 5)] : [];
    var edited = editCheck();
    var opened = first ? openMap(first.name, 0) : null;
    document.title = 'model ' + JSON.stringify({
      layers: layers(),
      top: top(),
      fields: { name: first && first.name, at: fields },
      hovered: hoverCheck(),
      opened: opened,
      edited: edited,
      view: strips.check(),
      sums: sumsCheck(),
      without: data.layers.filter(function (layer) { return layer.noArithmetic; }).map(function (layer) { return layer.name; })
    });
  }
  // #open=<node>/<k>, or #open=<node>/<k>@<x>,<y> to show that pixel's
  // arithmetic and field too.
  var open = /^#open=(.+)\/([0-9]+)(?:@([0-9]+),([0-9]+))?$/.exec(window.location.hash);
  if (open && openMap(decodeURIComponent(open[1]), Number(open[2])) && open[3] !== undefined) {
    document.getElementById('convmaps-detail').detail.showAt(Number(open[3]), Number(open[4]));
  }
})();
