// view.js: how a page draws maps from their values: the command line's ten
// colour maps, its normalisations (each map over its own range, every map
// over the range of all, or a fixed range; a diverging map centred on
// zero) and a ReLU view. ConvmapsView is shared by the page's scripts.
var ConvmapsView = (function () {
  'use strict';

  // Colours in each embedded table.
  var LEVELS = 256;

  // {name: base64 of LEVELS RGB triples} as {name: Uint8Array}.
  function decodeTables(encoded) {
    var tables = {};
    Object.keys(encoded).forEach(function (name) {
      var binary = atob(encoded[name]);
      var bytes = new Uint8Array(binary.length);
      for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
      tables[name] = bytes;
    });
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

  return {
    LEVELS: LEVELS,
    decodeTables: decodeTables,
    parseNormalize: parseNormalize,
    extent: extent,
    rangeFor: rangeFor,
    level: level,
    paint: paint,
    colourBar: colourBar
  };
})();
