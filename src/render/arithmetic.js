// arithmetic.js: one value of a conv's map as its arithmetic, from the
// copies a stack's or a network's page embeds (render/arithmetic.rs: the
// input as 8-bit values over each channel's range, the weights as f16): the
// sum over each input channel's window, then + bias, then what the steps
// after the conv (ReLU, max pooling) make of it; and the conv's filter
// drawn one input channel at a time. ConvmapsArithmetic serves the pages'
// scripts.
var ConvmapsArithmetic = (function () {
  'use strict';

  // How many channels a sum lists one by one; the rest are summed together.
  var LISTED = 8;

  // An IEEE 754 half float's 16 bits as a number.
  function halfToNumber(bits) {
    var sign = bits & 0x8000 ? -1 : 1, exponent = (bits >> 10) & 31, fraction = bits & 1023;
    if (exponent === 0) { return sign * fraction * Math.pow(2, -24); }
    if (exponent === 31) { return fraction ? NaN : sign * Infinity; }
    return sign * (1 + fraction / 1024) * Math.pow(2, exponent - 15);
  }

  // Base64 of little-endian halves, as a Float32Array.
  function decodeF16(text) {
    var bytes = ConvmapsView.decodeBase64(text);
    var values = new Float32Array(bytes.length / 2);
    for (var i = 0; i < values.length; i++) { values[i] = halfToNumber(bytes[2 * i] | bytes[2 * i + 1] << 8); }
    return values;
  }

  // Base64 of little-endian f32 values, as a Float32Array.
  function decodeF32(text) {
    var view = new DataView(ConvmapsView.decodeBase64(text).buffer);
    var values = new Float32Array(view.byteLength / 4);
    for (var i = 0; i < values.length; i++) { values[i] = view.getFloat32(4 * i, true); }
    return values;
  }

  // An embedded input [C, H, W]: each byte q of channel c read as
  // lo[c] + q·(hi[c] − lo[c])/255.
  function decodeInput(input) {
    var bytes = ConvmapsView.decodeBase64(input.bytes), plane = input.shape[1] * input.shape[2];
    var values = new Float32Array(bytes.length);
    for (var i = 0; i < values.length; i++) {
      var c = Math.floor(i / plane), lo = input.lo[c], hi = input.hi[c];
      values[i] = hi > lo ? lo + bytes[i] * (hi - lo) / 255 : lo;
    }
    return values;
  }

  // A conv as the page embeds it (`json`, with the page's `inputs`),
  // decoded: its geometry, weights [K, C/G, FH, FW], biases [K] (null
  // without), input [C, H, W], the steps after it, and where its numbers
  // come from (`source`, for the arithmetic's words).
  function readConv(json, inputs) {
    var input = inputs[json.input];
    return {
      kernel: json.kernel, strides: json.strides, pads: json.pads, dilations: json.dilations,
      groups: json.groups, filters: json.filters, inputName: json.input, shape: input.shape,
      channelsPerGroup: input.shape[0] / json.groups, then: json.then || [],
      source: '8-bit copies of ' + json.input + ' and f16 weights',
      weight: decodeF16(json.weight), bias: json.bias ? decodeF32(json.bias) : null, input: decodeInput(input)
    };
  }

  // The window sum of input channel c (of k's group) for output (x, y) of
  // filter k.
  function channelSum(conv, k, c, x, y) {
    var perGroup = conv.channelsPerGroup, fh = conv.kernel[0], fw = conv.kernel[1];
    var height = conv.shape[1], width = conv.shape[2];
    var channel = Math.floor(k / (conv.filters / conv.groups)) * perGroup + c;
    var sum = 0;
    for (var ky = 0; ky < fh; ky++) {
      var inY = y * conv.strides[0] - conv.pads[0] + ky * conv.dilations[0];
      if (inY < 0 || inY >= height) { continue; }
      var row = (channel * height + inY) * width, taps = ((k * perGroup + c) * fh + ky) * fw;
      for (var kx = 0; kx < fw; kx++) {
        var inX = x * conv.strides[1] - conv.pads[1] + kx * conv.dilations[1];
        if (inX >= 0 && inX < width) { sum += conv.input[row + inX] * conv.weight[taps + kx]; }
      }
    }
    return sum;
  }

  function biasOf(conv, k) { return conv.bias ? conv.bias[k] : 0; }

  // Value (x, y) of map k: each input channel's window sum
  // [{channel, sum}], the bias and the total.
  function sums(conv, k, x, y) {
    var first = Math.floor(k / (conv.filters / conv.groups)) * conv.channelsPerGroup;
    var channels = [], total = biasOf(conv, k);
    for (var c = 0; c < conv.channelsPerGroup; c++) {
      var sum = channelSum(conv, k, c, x, y);
      channels.push({ channel: first + c, sum: sum });
      total += sum;
    }
    return { channels: channels, bias: biasOf(conv, k), total: total };
  }

  // The conv's value (x, y) of map k alone: Σ channels + bias.
  function convValue(conv, k, x, y) {
    var total = 0;
    for (var c = 0; c < conv.channelsPerGroup; c++) { total += channelSum(conv, k, c, x, y); }
    return total + biasOf(conv, k);
  }

  // Map k's value at (x, y) after the first `count` steps after the conv:
  // {x, y} of the conv's value that decides it (a max pool takes the
  // largest of its window) and the value.
  function after(conv, k, x, y, count) {
    if (count === 0) { return { x: x, y: y, value: convValue(conv, k, x, y) }; }
    var step = conv.then[count - 1];
    if (step.op === 'relu') {
      var inner = after(conv, k, x, y, count - 1);
      return { x: inner.x, y: inner.y, value: Math.max(0, inner.value) };
    }
    var best = null;
    for (var j = 0; j < step.size; j++) {
      for (var i = 0; i < step.size; i++) {
        var candidate = after(conv, k, x * step.stride + i, y * step.stride + j, count - 1);
        if (!best || candidate.value > best.value) { best = candidate; }
      }
    }
    return best;
  }

  // Value (x, y) of map k as the page shows it: the conv's sums at the
  // pixel that decides it, and the value after every step.
  function evaluate(conv, k, x, y) {
    var decided = after(conv, k, x, y, conv.then.length);
    return { x: decided.x, y: decided.y, sums: sums(conv, k, decided.x, decided.y), value: decided.value };
  }

  // Four significant digits: about what the 8-bit copies of the input hold.
  function format(value) { return String(Number(value.toPrecision(4))); }

  function stepText(step) {
    return step.op === 'relu' ? 'ReLU' : 'max pool ' + step.size + (step.stride === step.size ? '' : ' stride ' + step.stride);
  }

  // The arithmetic as lines: where a max pool took the value from, the
  // channels that add the most (by |sum|), the rest together, the bias, and
  // the value after each step.
  function describe(conv, k, x, y) {
    var result = evaluate(conv, k, x, y), own = result.sums;
    var lines = ['map ' + k + ' at (' + x + ', ' + y + ') ≈ ' + format(result.value) + ', from ' + conv.source + ':'];
    if (result.x !== x || result.y !== y) {
      lines.push('  the conv\'s value at (' + result.x + ', ' + result.y + '), the largest its max pool sees:');
    }
    var ranked = own.channels.slice().sort(function (a, b) { return Math.abs(b.sum) - Math.abs(a.sum); });
    ranked.slice(0, LISTED).forEach(function (entry) {
      lines.push('  channel ' + entry.channel + ': ' + format(entry.sum));
    });
    var rest = ranked.slice(LISTED);
    if (rest.length) {
      lines.push('  ' + rest.length + ' more channels: ' + format(rest.reduce(function (all, entry) { return all + entry.sum; }, 0)));
    }
    lines.push('  + bias ' + format(own.bias) + ' = ' + format(own.total));
    var steps = conv.then.map(stepText);
    if (steps.length) { lines.push('  then ' + steps.join(', ') + ' = ' + format(result.value)); }
    return lines.join('\n');
  }

  // A weight over the filter's largest |weight|, t in [−1, 1], as a
  // colour: blue below zero, white at zero, red above.
  function colour(t) {
    var low = [33, 102, 172], high = [178, 24, 43], end = t < 0 ? low : high, a = Math.min(1, Math.abs(t));
    return end.map(function (channel) { return Math.round(255 + (channel - 255) * a); });
  }

  // Filter k as one small picture per input channel (at most `most`), each
  // tap a square of `scale` pixels.
  function filterPictures(conv, k, most, scale) {
    var box = document.createElement('div');
    box.className = 'filter-channels';
    var perGroup = conv.channelsPerGroup, fh = conv.kernel[0], fw = conv.kernel[1], size = fh * fw;
    var start = k * perGroup * size, largest = 0;
    for (var i = 0; i < perGroup * size; i++) { largest = Math.max(largest, Math.abs(conv.weight[start + i])); }
    var first = Math.floor(k / (conv.filters / conv.groups)) * perGroup;
    for (var c = 0; c < Math.min(perGroup, most); c++) {
      var canvas = document.createElement('canvas');
      canvas.width = fw * scale;
      canvas.height = fh * scale;
      canvas.title = 'channel ' + (first + c);
      var context = canvas.getContext('2d');
      for (var tap = 0; tap < size; tap++) {
        var rgb = colour(largest ? conv.weight[start + c * size + tap] / largest : 0);
        context.fillStyle = 'rgb(' + rgb.join(',') + ')';
        context.fillRect((tap % fw) * scale, Math.floor(tap / fw) * scale, scale, scale);
      }
      box.appendChild(canvas);
    }
    if (perGroup > most) { box.appendChild(document.createTextNode(' … and ' + (perGroup - most) + ' more channels')); }
    return box;
  }

  // Map k after every step, `width`×`height` row-major (the page's map).
  function map(conv, k, width, height) {
    var values = new Float32Array(width * height);
    for (var y = 0; y < height; y++) {
      for (var x = 0; x < width; x++) { values[y * width + x] = after(conv, k, x, y, conv.then.length).value; }
    }
    return values;
  }

  return {
    readConv: readConv, sums: sums, evaluate: evaluate, map: map, describe: describe, filterPictures: filterPictures
  };
})();
