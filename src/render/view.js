// view.js: how a page draws maps from their values: the command line's ten
// colour maps, its normalisations (each map over its own range, every map
// over the range of all, or a fixed range; a diverging map centred on
// zero) and a ReLU view. ConvmapsView is shared by the page's scripts.
var ConvmapsView = (function () {
  'use strict';

  // Colours in each embedded table.
  var LEVELS = 256;

  // Base64 text as its bytes.
  function decodeBase64(text) {
    var binary = atob(text);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
    return bytes;
  }

  // {name: base64 of LEVELS RGB triples} as {name: Uint8Array}.
  function decodeTables(encoded) {
    var tables = {};
    Object.keys(encoded).forEach(function (name) { tables[name] = decodeBase64(encoded[name]); });
    return tables;
  }

  // 'per-map', 'global' (or 'per-layer'), [lo, hi] or 'lo,hi' as the
  // command line's --normalize reads it; throws on anything else.
  function parseNormalize(value) {
    if (value === 'per-map' || value === 'global') { return value; }
    if (value === 'per-layer') { return 'global'; }
    var pair = Array.isArray(value) ? value : String(value).split(',');
    var lo = Number(pair[0]), hi = Number(pair[1]);
    if (pair.length !== 2 || !isFinite(lo) || !isFinite(hi) || !(lo < hi)) {
      throw new Error('normalize ' + JSON.stringify(value) + ' is not per-map, global or a range [lo, hi] with lo < hi');
    }
    return [lo, hi];
  }

  // `view` = {colormap, normalize, relu} with `options` (any of them)
  // applied and checked: a colour map of `tables`, a normalisation as
  // parseNormalize reads it. Throws on an unknown colour map.
  function merge(view, options, tables) {
    var next = Object.assign({}, view);
    if (options.colormap !== undefined) {
      if (!tables[options.colormap]) {
        throw new Error('colormap ' + JSON.stringify(options.colormap) + ' is not one of ' + Object.keys(tables).join(', '));
      }
      next.colormap = options.colormap;
    }
    if (options.normalize !== undefined) { next.normalize = parseNormalize(options.normalize); }
    if (options.relu !== undefined) { next.relu = Boolean(options.relu); }
    return next;
  }

  // The map and pixel under a pointer event over a grid picture laid out
  // as `grid` says ({columns, cellWidth, cellHeight, gap, width, height,
  // maps, mapWidth, mapHeight}, as the run drew it): {map, x, y}, or null
  // in a gap or past the last map.
  function gridPixel(grid, image, event) {
    var box = image.getBoundingClientRect();
    var px = (event.clientX - box.left) * grid.width / box.width;
    var py = (event.clientY - box.top) * grid.height / box.height;
    var column = Math.floor((px - grid.gap) / (grid.cellWidth + grid.gap));
    var row = Math.floor((py - grid.gap) / (grid.cellHeight + grid.gap));
    var inX = px - grid.gap - column * (grid.cellWidth + grid.gap);
    var inY = py - grid.gap - row * (grid.cellHeight + grid.gap);
    var map = row * grid.columns + column;
    var inside = column >= 0 && column < grid.columns && row >= 0 && map < grid.maps &&
      inX >= 0 && inX < grid.cellWidth && inY >= 0 && inY < grid.cellHeight;
    if (!inside) { return null; }
    return {
      map: map,
      x: Math.floor(inX * grid.mapWidth / grid.cellWidth),
      y: Math.floor(inY * grid.mapHeight / grid.cellHeight)
    };
  }

  function shown(value, relu) { return relu && value < 0 ? 0 : value; }

  // [min, max] of the values as drawn (after the ReLU view).
  function extent(values, relu) {
    var lo = Infinity, hi = -Infinity;
    for (var i = 0; i < values.length; i++) {
      var v = shown(values[i], relu);
      if (v < lo) { lo = v; }
      if (v > hi) { hi = v; }
    }
    return [lo, hi];
  }

  // The range one map is drawn over, given its own extent and the extent
  // of all maps: as Normalize::range in the native code.
  function rangeFor(view, own, all, diverging) {
    var range = view.normalize === 'per-map' ? own : view.normalize === 'global' ? all : view.normalize;
    if (!diverging) { return range; }
    var m = Math.max(Math.abs(range[0]), Math.abs(range[1]));
    return [-m, m];
  }

  // The table index of `value` over `range` (the middle for a flat range).
  function level(value, range) {
    var t = range[1] > range[0] ? (value - range[0]) / (range[1] - range[0]) : 0.5;
    return Math.round(Math.min(1, Math.max(0, t)) * (LEVELS - 1));
  }

  // Draws `values` (row-major, canvas-sized) into `canvas` with `table`.
  function paint(canvas, values, relu, range, table) {
    var context = canvas.getContext('2d');
    var image = context.createImageData(canvas.width, canvas.height);
    for (var i = 0; i < values.length; i++) {
      var at = 3 * level(shown(values[i], relu), range);
      image.data[4 * i] = table[at];
      image.data[4 * i + 1] = table[at + 1];
      image.data[4 * i + 2] = table[at + 2];
      image.data[4 * i + 3] = 255;
    }
    context.putImageData(image, 0, 0);
  }

  function format(value) { return String(Number(value.toPrecision(4))); }

  // A colour bar of `table` labelled with `range` (and 0 where it spans it).
  function colourBar(table, range, caption) {
    var bar = document.createElement('div');
    bar.className = 'colour-bar';
    var canvas = document.createElement('canvas');
    canvas.width = LEVELS;
    canvas.height = 1;
    var image = canvas.getContext('2d').createImageData(LEVELS, 1);
    for (var i = 0; i < LEVELS; i++) {
      image.data.set([table[3 * i], table[3 * i + 1], table[3 * i + 2], 255], 4 * i);
    }
    canvas.getContext('2d').putImageData(image, 0, 0);
    var labels = document.createElement('div');
    labels.className = 'colour-labels';
    var ends = [format(range[0])];
    if (range[0] < 0 && range[1] > 0) { ends.push('0'); }
    ends.push(format(range[1]));
    ends.forEach(function (text) {
      var span = document.createElement('span');
      span.textContent = text;
      labels.appendChild(span);
    });
    var note = document.createElement('div');
    note.className = 'colour-caption';
    note.textContent = caption;
    bar.appendChild(canvas);
    bar.appendChild(labels);
    bar.appendChild(note);
    return bar;
  }

  function labelled(text, input) {
    var label = document.createElement('label');
    label.textContent = text + ' ';
    label.appendChild(input);
    return label;
  }

  // Switches for a view: a colour map (one of `names`), a normalisation
  // (per map, per layer, or a fixed range from–to) and the ReLU view;
  // `changed({colormap, normalize, relu})` on every change. Returns
  // {element, fill(view, range)}: fill sets the switches from a view, and
  // the from–to boxes from `range` unless the view's range is fixed.
  function controls(names, changed) {
    var form = document.createElement('form');
    form.className = 'view';
    form.addEventListener('submit', function (event) { event.preventDefault(); });
    var colormap = document.createElement('select');
    names.forEach(function (name) {
      var option = document.createElement('option');
      option.textContent = name;
      colormap.appendChild(option);
    });
    var normalize = document.createElement('select');
    [['per-map', 'per map'], ['global', 'per layer'], ['fixed', 'fixed range']].forEach(function (choice) {
      var option = document.createElement('option');
      option.value = choice[0];
      option.textContent = choice[1];
      normalize.appendChild(option);
    });
    var low = document.createElement('input'), high = document.createElement('input'), relu = document.createElement('input');
    low.type = high.type = 'number';
    low.step = high.step = 'any';
    relu.type = 'checkbox';
    function read() {
      var fixed = normalize.value === 'fixed';
      return { colormap: colormap.value, normalize: fixed ? [Number(low.value), Number(high.value)] : normalize.value, relu: relu.checked };
    }
    [colormap, normalize, low, high, relu].forEach(function (input) {
      input.addEventListener('change', function () { changed(read()); });
    });
    [['colour map', colormap], ['normalise', normalize], ['from', low], ['to', high], ['ReLU view', relu]].forEach(function (pair) {
      form.appendChild(labelled(pair[0], pair[1]));
    });
    function fill(view, range) {
      var fixed = Array.isArray(view.normalize), shown = fixed ? view.normalize : range;
      colormap.value = view.colormap;
      normalize.value = fixed ? 'fixed' : view.normalize;
      if (shown && isFinite(shown[0])) { low.value = format(shown[0]); }
      if (shown && isFinite(shown[1])) { high.value = format(shown[1]); }
      low.disabled = high.disabled = !fixed;
      relu.checked = view.relu;
    }
    return { element: form, fill: fill };
  }

  return {
    LEVELS: LEVELS,
    controls: controls,
    labelled: labelled,
    decodeBase64: decodeBase64,
    decodeTables: decodeTables,
    parseNormalize: parseNormalize,
    merge: merge,
    gridPixel: gridPixel,
    extent: extent,
    rangeFor: rangeFor,
    level: level,
    paint: paint,
    colourBar: colourBar
  };
})();
