// banks.js: the command line's built-in banks of designed filters (edges,
// gabor, opponent, blur, identity, mixed), made the same way as banks.rs
// makes them, so that the page can load one into a re-planned layer or into
// one filter. ConvmapsBanks.weights(name, shape) gives a bank's weights
// [K, C/G, FH, FW] for shape = {filters, channelsPerGroup, kernelHeight,
// kernelWidth}; the banks' biases are zero.
var ConvmapsBanks = (function () {
  'use strict';

  var NAMES = ['edges', 'gabor', 'opponent', 'blur', 'identity', 'mixed'];
  // The designs each bank cycles through.
  var DESIGNS = {
    edges: ['edges'], gabor: ['gabor'], opponent: ['opponent'], blur: ['blur'], identity: ['identity'],
    mixed: ['edges', 'gabor', 'opponent', 'blur']
  };

  // Each tap's offset [dy, dx] from the kernel's centre, row-major.
  function offsets(shape) {
    var list = [], cy = (shape.height - 1) / 2, cx = (shape.width - 1) / 2;
    for (var y = 0; y < shape.height; y++) {
      for (var x = 0; x < shape.width; x++) { list.push([y - cy, x - cx]); }
    }
    return list;
  }

  // The unnormalised Gaussian envelope with sigma scale·FH down, scale·FW across.
  function envelope(shape, scale) {
    var sy = scale * shape.height, sx = scale * shape.width;
    return offsets(shape).map(function (d) { return Math.exp(-0.5 * (Math.pow(d[0] / sy, 2) + Math.pow(d[1] / sx, 2))); });
  }

  // A Gaussian summing to 1.
  function gaussian(shape, scale) {
    var spatial = envelope(shape, scale), total = spatial.reduce(function (a, v) { return a + v; }, 0);
    return spatial.map(function (v) { return v / total; });
  }

  // [C, FH, FW] whose channel c is channel[c]·spatial.
  function outer(channel, spatial) {
    var filter = [];
    channel.forEach(function (c) { spatial.forEach(function (s) { filter.push(c * s); }); });
    return filter;
  }

  function direction(index, count) {
    var angle = Math.PI * index / count, snap = function (v) { return Math.abs(v) < 1e-12 ? 0 : v; };
    return [snap(Math.cos(angle)), snap(Math.sin(angle))];
  }

  function filled(count, value) {
    var list = [];
    for (var i = 0; i < count; i++) { list.push(value); }
    return list;
  }

  function edge(index, count, shape) {
    var d = direction(index, count), g = envelope(shape, 0.25);
    var spatial = offsets(shape).map(function (o, i) { return (o[1] * d[0] + o[0] * d[1]) * g[i]; });
    var step = spatial.reduce(function (a, v) { return v > 0 ? a + v : a; }, 0);
    if (step < 1e-9) { return null; }
    return outer(filled(shape.channels, 1 / (step * shape.channels)), spatial);
  }

  function gabor(index, count, shape) {
    var frequencies = Math.min(3, Math.max(1, Math.ceil(count / 16)));
    var orientations = Math.ceil(count / (2 * frequencies));
    var odd = index % 2 === 1, orientation = Math.floor(index / 2) % orientations;
    var frequency = Math.floor(index / (2 * orientations));
    var meanSize = (shape.height + shape.width) / 2;
    var wavelength = Math.max(0.8 * meanSize / Math.pow(1.5, frequency), 2.5);
    var phase = odd ? -Math.PI / 2 : 0, d = direction(orientation, orientations), g = envelope(shape, 0.25);
    var spatial = offsets(shape).map(function (o, i) {
      return g[i] * Math.cos(2 * Math.PI * (o[1] * d[0] + o[0] * d[1]) / wavelength + phase);
    });
    var mean = spatial.reduce(function (a, v) { return a + v; }, 0) / spatial.length;
    spatial = spatial.map(function (v) { return v - mean; });
    var norm = Math.sqrt(spatial.reduce(function (a, v) { return a + v * v; }, 0));
    if (norm < 1e-6) { return null; }
    return outer(filled(shape.channels, 1 / (norm * Math.sqrt(shape.channels))), spatial);
  }

  // The opponent colour pairs [centre, surround] for C/G channels.
  function opponentColours(channels) {
    var unit = function (c) { var v = filled(channels, 0); v[c] = 1; return v; };
    var light = filled(channels, 1 / channels), dark = light.map(function (v) { return -v; }), pairs = [];
    if (channels === 3) {
      var yellow = [0.5, 0.5, 0];
      pairs.push([unit(0), unit(1)], [unit(1), unit(0)], [unit(2), yellow], [yellow, unit(2)]);
    } else {
      for (var c = 1; c < channels; c++) { pairs.push([unit(c - 1), unit(c)], [unit(c), unit(c - 1)]); }
    }
    pairs.push([light, light], [dark, dark]);
    return pairs;
  }

  function opponent(index, shape) {
    var pairs = opponentColours(shape.channels), pair = pairs[index % pairs.length];
    var size = Math.pow(1.5, Math.floor(index / pairs.length) % 3);
    var centre = outer(pair[0], gaussian(shape, size / 8)), surround = outer(pair[1], gaussian(shape, size / 4));
    var filter = centre.map(function (c, i) { return c - surround[i]; });
    return filter.some(function (v) { return Math.abs(v) > 1e-9; }) ? filter : null;
  }

  function blur(index, count, shape) {
    var taps = shape.height * shape.width, gaussians = Math.max(count - 1, 1), spatial;
    if (count >= 2 && index === count - 1) {
      spatial = filled(taps, 1 / taps);
    } else if (gaussians === 1) {
      spatial = gaussian(shape, 0.25);
    } else {
      spatial = gaussian(shape, 0.125 + 0.375 * index / (gaussians - 1));
    }
    return outer(filled(shape.channels, 1 / shape.channels), spatial);
  }

  function identity(index, shape) {
    var filter = filled(shape.channels * shape.height * shape.width, 0);
    var y = (shape.height - 1) >> 1, x = (shape.width - 1) >> 1;
    filter[((index % shape.channels) * shape.height + y) * shape.width + x] = 1;
    return filter;
  }

  // The fallback for a design the kernel cannot express: a colour mix
  // spread evenly over the window.
  function colourMix(index, shape) {
    var pairs = opponentColours(shape.channels), pair = pairs[index % pairs.length];
    var same = pair[0].every(function (v, i) { return v === pair[1][i]; });
    var mix = same ? pair[0] : pair[0].map(function (c, i) { return c - pair[1][i]; });
    var taps = shape.height * shape.width;
    return outer(mix, filled(taps, 1 / taps));
  }

  function design(name, index, count, shape) {
    if (name === 'edges') { return edge(index, count, shape); }
    if (name === 'gabor') { return gabor(index, count, shape); }
    if (name === 'opponent') { return opponent(index, shape); }
    if (name === 'blur') { return blur(index, count, shape); }
    return identity(index, shape);
  }

  // Bank `name`'s weights for `layer` = {filters, channelsPerGroup,
  // kernelHeight, kernelWidth}: filter k is filter k / D of design k mod D.
  function weights(name, layer) {
    var designs = DESIGNS[name];
    if (!designs) { throw new Error('bank ' + JSON.stringify(name) + ' is not one of ' + NAMES.join(', ')); }
    var shape = { channels: layer.channelsPerGroup, height: layer.kernelHeight, width: layer.kernelWidth };
    var cycle = designs.length, weight = [];
    for (var k = 0; k < layer.filters; k++) {
      var index = Math.floor(k / cycle), count = Math.ceil((layer.filters - k % cycle) / cycle);
      var filter = design(designs[k % cycle], index, count, shape) || colourMix(index, shape);
      weight = weight.concat(filter);
    }
    return new Float32Array(weight);
  }

  return { NAMES: NAMES, weights: weights };
})();
