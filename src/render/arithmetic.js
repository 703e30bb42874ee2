// arithmetic.js: one value of a conv's map as its arithmetic, from the f16
// copies a network's page embeds (render/arithmetic.rs): the sum over each
// input channel's window, then + bias = value, and the conv's filter drawn
// one input channel at a time. ConvmapsArithmetic serves the page's script.
var ConvmapsArithmetic = (function () {
  'use strict';

  // How many channels a sum lists one by one; the rest are summed together.
  var LISTED = 8;

  function decodeBase64(text) {
    var binary = atob(text);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
    return bytes;
  }

  // An IEEE 754 half float's 16 bits as a number.
  function halfToNumber(bits) {
    var sign = bits & 0x8000 ? -1 : 1, exponent = (bits >> 10) & 31, fraction = bits & 1023;
    if (exponent === 0) { return sign * fraction * Math.pow(2, -24); }
    if (exponent === 31) { return fraction ? NaN : sign * Infinity; }
    return sign * (1 + fraction / 1024) * Math.pow(2, exponent - 15);
  }

  // Base64 of little-endian halves, as a Float32Array.
  function decodeF16(text) {
    var bytes = decodeBase64(text);
    var values = new Float32Array(bytes.length / 2);
    for (var i = 0; i < values.length; i++) { values[i] = halfToNumber(bytes[2 * i] | bytes[2 * i + 1] << 8); }
    return values;
  }

  // Base64 of little-endian f32 values, as a Float32Array.
  function decodeF32(text) {
    var view = new DataView(decodeBase64(text).buffer);
    var values = new Float32Array(view.byteLength / 4);
    for (var i = 0; i < values.length; i++) { values[i] = view.getFloat32(4 * i, true); }
    return values;
  }

  // A conv as the page embeds it (`json`, with the page's `inputs`),
  // decoded: its geometry, weights [K, C/G, FH, FW], biases [K] (null
  // without) and input [C, H, W].
  function readConv(json, inputs) {
    var input = inputs[json.input];
    return {
      kernel: json.kernel, strides: json.strides, pads: json.pads, dilations: json.dilations,
      groups: json.groups, filters: json.filters, inputName: json.input, shape: input.shape,
      channelsPerGroup: input.shape[0] / json.groups,
      weight: decodeF16(json.weight), bias: json.bias ? decodeF32(json.bias) : null, input: decodeF16(input.values)
    };
  }

  // Value (x, y) of map k: each input channel's window sum
  // [{channel, sum}], the bias and the total.
  function sums(conv, k, x, y) {
    var perGroup = conv.channelsPerGroup, fh = conv.kernel[0], fw = conv.kernel[1];
    var height = conv.shape[1], width = conv.shape[2], plane = height * width;
    var first = Math.floor(k / (conv.filters / conv.groups)) * perGroup;
    var channels = [];
    for (var c = 0; c < perGroup; c++) {
      var sum = 0;
      for (var ky = 0; ky < fh; ky++) {
        var inY = y * conv.strides[0] - conv.pads[0] + ky * conv.dilations[0];
        if (inY < 0 || inY >= height) { continue; }
        for (var kx = 0; kx < fw; kx++) {
          var inX = x * conv.strides[1] - conv.pads[1] + kx * conv.dilations[1];
          if (inX < 0 || inX >= width) { continue; }
          sum += conv.input[(first + c) * plane + inY * width + inX] * conv.weight[((k * perGroup + c) * fh + ky) * fw + kx];
        }
      }
      channels.push({ channel: first + c, sum: sum });
    }
    var bias = conv.bias ? conv.bias[k] : 0;
    var total = channels.reduce(function (all, entry) { return all + entry.sum; }, 0) + bias;
    return { channels: channels, bias: bias, total: total };
  }

  function format(value) { return String(Number(value.toPrecision(5))); }

  // The sums as lines: the channels that add the most (by |sum|), the rest
  // together, then the bias and the value.
  function describe(conv, k, x, y) {
    var result = sums(conv, k, x, y);
    var ranked = result.channels.slice().sort(function (a, b) { return Math.abs(b.sum) - Math.abs(a.sum); });
    var lines = ['map ' + k + ' at (' + x + ', ' + y + '), from f16 copies of ' + conv.inputName + ' and the weights:'];
    ranked.slice(0, LISTED).forEach(function (entry) {
      lines.push('  channel ' + entry.channel + ': ' + format(entry.sum));
    });
    var rest = ranked.slice(LISTED);
    if (rest.length) {
      lines.push('  ' + rest.length + ' more channels: ' + format(rest.reduce(function (all, entry) { return all + entry.sum; }, 0)));
    }
    lines.push('  + bias ' + format(result.bias) + ' = ' + format(result.total));
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

  return { readConv: readConv, sums: sums, describe: describe, filterPictures: filterPictures };
})();
