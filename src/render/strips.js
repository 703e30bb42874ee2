// strips.js: each layer's strip of thumbnails on a stack's or a network's
// page, drawn in the page from the 8-bit copies it embeds (render/strip.rs):
// the first maps of each layer, in any of the command line's colour maps
// and normalisations, with a ReLU view. The switches above the layers and
// window.convmaps.setView({colormap, normalize, relu}) redraw every strip at
// once; the run's own pictures stay as the run drew them.
var ConvmapsStrips = (function () {
  'use strict';

  // A strip's maps as values: byte q of map k read as lo[k] + q·(hi[k] −
  // lo[k])/255.
  function decodeStrip(strip) {
    var bytes = ConvmapsView.decodeBase64(strip.bytes), size = strip.width * strip.height, maps = [];
    for (var k = 0; k < strip.count; k++) {
      var values = new Float32Array(size), lo = strip.lo[k], hi = strip.hi[k];
      for (var i = 0; i < size; i++) { values[i] = hi > lo ? lo + bytes[k * size + i] * (hi - lo) / 255 : lo; }
      maps.push(values);
    }
    return maps;
  }

  // The strip of `layer` as an element: one canvas per map it holds and a
  // caption.
  function stripElement(layer, maps) {
    var box = document.createElement('figure');
    box.className = 'strip';
    box.dataset.strip = layer.name;
    var canvases = maps.map(function (values, k) {
      var canvas = document.createElement('canvas');
      canvas.width = layer.strip.width;
      canvas.height = layer.strip.height;
      canvas.title = layer.name + ' map ' + k;
      box.appendChild(canvas);
      return canvas;
    });
    var caption = document.createElement('figcaption');
    caption.textContent = (layer.strip.count < layer.strip.maps
      ? 'its first ' + layer.strip.count + ' of ' + layer.strip.maps + ' maps'
      : 'its ' + layer.strip.maps + ' maps') + ', drawn in this page as the switches above say (shrunk to at most ' +
      layer.strip.width + '×' + layer.strip.height + '); the grid shows them as the run drew them';
    box.appendChild(caption);
    return { element: box, canvases: canvases };
  }

  // Draws every strip as `state.view` says: per map over its own range, per
  // layer over the range of the maps its strip holds, or a fixed range.
  function draw(state) {
    var view = state.view, table = state.tables[view.colormap];
    var diverging = state.diverging.indexOf(view.colormap) >= 0;
    state.strips.forEach(function (strip) {
      var extents = strip.maps.map(function (values) { return ConvmapsView.extent(values, view.relu); });
      var all = extents.reduce(function (a, e) { return [Math.min(a[0], e[0]), Math.max(a[1], e[1])]; }, [Infinity, -Infinity]);
      strip.maps.forEach(function (values, k) {
        var range = ConvmapsView.rangeFor(view, extents[k], all, diverging);
        ConvmapsView.paint(strip.canvases[k], values, view.relu, range, table);
      });
    });
  }

  // Strips for `layers` (those with a strip), each put in the page by
  // `place(layer, element)`, and the switches put by `place(null, element)`.
  // Returns {setView(view), view()}.
  function start(layers, viewData, place) {
    var state = {
      tables: ConvmapsView.decodeTables(viewData.colormaps),
      diverging: viewData.diverging,
      view: { colormap: viewData.colormap, normalize: ConvmapsView.parseNormalize(viewData.normalize), relu: false },
      strips: []
    };
    var controls = ConvmapsView.controls(Object.keys(state.tables), function (view) {
      try { setView(view); } catch (error) { controls.element.title = String(error.message || error); }
    });
    layers.filter(function (layer) { return layer.strip && layer.strip.count; }).forEach(function (layer) {
      var maps = decodeStrip(layer.strip), made = stripElement(layer, maps);
      place(layer, made.element);
      state.strips.push({ maps: maps, canvases: made.canvases });
    });
    if (state.strips.length) { place(null, controls.element); }

    function setView(options) {
      var next = ConvmapsView.merge(state.view, options, state.tables);
      state.view = next;
      draw(state);
      controls.fill(next, null);
      return { colormap: next.colormap, normalize: next.normalize, relu: next.relu };
    }

    // For the pages' checks: every value of the first strip's first map in
    // rdbu over a fixed −1..1 with the ReLU view is the table's colour, and
    // an unknown colour map is refused; the view is then put back.
    function check() {
      if (!state.strips.length) { return null; }
      var before = state.view, strip = state.strips[0], values = strip.maps[0], table = state.tables.rdbu;
      setView({ colormap: 'rdbu', normalize: [-1, 1], relu: true });
      var context = strip.canvases[0].getContext('2d'), width = strip.canvases[0].width, wrong = 0;
      for (var i = 0; i < values.length; i++) {
        var at = 3 * ConvmapsView.level(Math.max(0, values[i]), [-1, 1]);
        var pixel = context.getImageData(i % width, Math.floor(i / width), 1, 1).data;
        if (pixel[0] !== table[at] || pixel[1] !== table[at + 1] || pixel[2] !== table[at + 2]) { wrong++; }
      }
      var refused = false;
      try { setView({ colormap: 'no-such-map' }); } catch (error) { refused = true; }
      setView(before);
      return { strips: state.strips.length, values: values.length, wrong: wrong, refused: refused };
    }

    draw(state);
    controls.fill(state.view, null);
    return { setView: setView, view: function () { return Object.assign({}, state.view); }, check: check };
  }

  return { start: start };
})();
