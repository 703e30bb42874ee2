// live.js: index.html computes its own maps in a WebGPU browser.
//
// It runs the project's shader (shaders/conv2d_direct.wgsl, embedded
// verbatim in #convmaps-wgsl) on the photo's preview with the run's weights
// and biases (#convmaps-data), draws each map beside the run's picture of
// it, lets a person edit a filter's weights and bias, and shows, under the
// cursor, one output value as its sum channel by channel plus the one bias.
//
// index.html#selftest checks the live maps against maps the native run
// computed on the same preview and writes `selftest ok <worst relative
// error>` or `selftest fail <reason>` into the title. <body data-live> is
// "webgpu" once live maps are drawn, "static" when they cannot be.
(function () {
  'use strict';

  // The shader's workgroup size in x and y.
  var WORKGROUP = 8;
  // The shader's Params uniform: 16 u32 fields, in the struct's order.
  var PARAMS_FIELDS = [
    'in_channels', 'in_height', 'in_width', 'filters',
    'out_height', 'out_width', 'kernel_height', 'kernel_width',
    'stride', 'dilation', 'pad_top', 'pad_left',
    'channels_per_group', 'filters_per_group', 'has_bias', 'activation'
  ];
  // Largest relative error the self-test accepts.
  var TOLERANCE = 1e-5;
  var CHANNEL_NAMES = ['red', 'green', 'blue'];

  // ------------------------------------------------------------ data

  function decodeBase64(text) {
    var binary = atob(text);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
    return bytes;
  }

  // Base64 of little-endian f32 values, as a Float32Array.
  function decodeF32(text) {
    var bytes = decodeBase64(text);
    var view = new DataView(bytes.buffer);
    var values = new Float32Array(bytes.length / 4);
    for (var i = 0; i < values.length; i++) { values[i] = view.getFloat32(4 * i, true); }
    return values;
  }

  // The preview's 8-bit RGB as the layer's input [3, H, W]: sample / 255.
  function inputTensor(data) {
    var rgb = decodeBase64(data.rgb);
    var plane = data.width * data.height;
    var input = new Float32Array(3 * plane);
    for (var i = 0; i < plane; i++) {
      for (var c = 0; c < 3; c++) { input[c * plane + i] = rgb[3 * i + c] / 255; }
    }
    return input;
  }

  // Everything the page computes with: the data, the input, the current
  // weights and biases and the run's own, and the latest maps.
  function readLive() {
    var data = JSON.parse(document.getElementById('convmaps-data').textContent);
    var layer = data.layer;
    // A layer without bias gets zero biases (the same sums), so that its
    // biases can be edited too.
    var runBias = layer.hasBias ? decodeF32(data.bias) : new Float32Array(layer.filters);
    var live = {
      data: data,
      layer: layer,
      input: inputTensor(data),
      runWeight: decodeF32(data.weight),
      runBias: runBias,
      channelsPerGroup: layer.channels / layer.groups,
      filtersPerGroup: layer.filters / layer.groups,
      maps: [],
      canvases: [],
      dirty: {},
      busy: false,
      selected: -1
    };
    live.weight = live.runWeight.slice();
    live.bias = live.runBias.slice();
    live.filterSize = live.channelsPerGroup * layer.kernelHeight * layer.kernelWidth;
    return live;
  }

  // ------------------------------------------------------------ GPU

  // The device, or null when the browser has no WebGPU adapter.
  async function openDevice() {
    if (!navigator.gpu) { return null; }
    var adapter = await navigator.gpu.requestAdapter();
    if (!adapter) { return null; }
    var limits = adapter.limits;
    return adapter.requestDevice({
      requiredLimits: {
        maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
        maxBufferSize: limits.maxBufferSize
      }
    });
  }

  async function buildPipeline(device) {
    var source = document.getElementById('convmaps-wgsl').textContent;
    var module = device.createShaderModule({ label: 'conv2d_direct.wgsl', code: source });
    return device.createComputePipelineAsync({
      label: 'conv2d_direct',
      layout: 'auto',
      compute: { module: module, entryPoint: 'conv2d_direct' }
    });
  }

  function storageBuffer(device, values) {
    var buffer = device.createBuffer({
      size: Math.max(4, values.byteLength),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST
    });
    device.queue.writeBuffer(buffer, 0, values);
    return buffer;
  }

  // The Params uniform, written field by field in the struct's order.
  function paramsBuffer(device, params) {
    var view = new DataView(new ArrayBuffer(4 * PARAMS_FIELDS.length));
    PARAMS_FIELDS.forEach(function (name, i) { view.setUint32(4 * i, params[name], true); });
    var buffer = device.createBuffer({
      size: view.byteLength,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST
    });
    device.queue.writeBuffer(buffer, 0, view.buffer);
    return buffer;
  }

  // Params for `filters` filters over `channels` input channels, of which
  // each filter sees `channelsPerGroup`.
  function makeParams(live, channels, filters, filtersPerGroup) {
    var layer = live.layer;
    return {
      in_channels: channels, in_height: live.data.height, in_width: live.data.width,
      filters: filters, out_height: live.data.outHeight, out_width: live.data.outWidth,
      kernel_height: layer.kernelHeight, kernel_width: layer.kernelWidth,
      stride: layer.stride, dilation: layer.dilation,
      pad_top: layer.padTop, pad_left: layer.padLeft,
      channels_per_group: live.channelsPerGroup, filters_per_group: filtersPerGroup,
      has_bias: 1, activation: layer.activation // always a bias: zeros for a layer without one
    };
  }

  // Runs the shader: (ceil(OW/8), ceil(OH/8), filters) workgroups; returns
  // the output [filters, OH, OW].
  async function dispatch(live, input, weight, bias, params) {
    var device = live.device;
    var bytes = 4 * params.filters * params.out_height * params.out_width;
    var output = device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    var readback = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    var buffers = [storageBuffer(device, weight), storageBuffer(device, bias), paramsBuffer(device, params)];
    var bindGroup = device.createBindGroup({
      layout: live.pipeline.getBindGroupLayout(0),
      entries: [input, buffers[0], buffers[1], output, buffers[2]].map(function (buffer, i) {
        return { binding: i, resource: { buffer: buffer } };
      })
    });
    var encoder = device.createCommandEncoder();
    var pass = encoder.beginComputePass();
    pass.setPipeline(live.pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(Math.ceil(params.out_width / WORKGROUP), Math.ceil(params.out_height / WORKGROUP), params.filters);
    pass.end();
    encoder.copyBufferToBuffer(output, 0, readback, 0, bytes);
    device.queue.submit([encoder.finish()]);
    await readback.mapAsync(GPUMapMode.READ);
    var values = new Float32Array(readback.getMappedRange().slice(0));
    readback.unmap();
    buffers.concat([output, readback]).forEach(function (buffer) { buffer.destroy(); });
    return values;
  }

  // The input on the GPU: all channels, and each group's channels alone
  // (for one filter's dispatch).
  function uploadInput(live) {
    var plane = live.data.width * live.data.height;
    var perGroup = live.channelsPerGroup * plane;
    live.inputBuffer = storageBuffer(live.device, live.input);
    live.groupInputs = [];
    for (var g = 0; g < live.layer.groups; g++) {
      live.groupInputs.push(live.layer.groups === 1 ? live.inputBuffer
        : storageBuffer(live.device, live.input.subarray(g * perGroup, (g + 1) * perGroup)));
    }
  }

  function planeLength(live) { return live.data.outWidth * live.data.outHeight; }

  // Every map: one dispatch of the whole layer, as the native run does, or
  // filter by filter when the output is over the device's binding limit.
  async function computeAll(live) {
    var layer = live.layer;
    var plane = planeLength(live);
    if (4 * plane * layer.filters > live.device.limits.maxStorageBufferBindingSize) {
      for (var k = 0; k < layer.filters; k++) { await computeFilter(live, k); }
      return;
    }
    var params = makeParams(live, layer.channels, layer.filters, live.filtersPerGroup);
    var maps = await dispatch(live, live.inputBuffer, live.weight, live.bias, params);
    for (var j = 0; j < layer.filters; j++) { live.maps[j] = maps.slice(j * plane, (j + 1) * plane); }
  }

  // Map k alone: a dispatch of one filter over its group's channels.
  async function computeFilter(live, k) {
    var group = Math.floor(k / live.filtersPerGroup);
    var weight = live.weight.subarray(k * live.filterSize, (k + 1) * live.filterSize);
    var params = makeParams(live, live.channelsPerGroup, 1, 1);
    live.maps[k] = await dispatch(live, live.groupInputs[group], weight, live.bias.subarray(k, k + 1), params);
  }

  // ------------------------------------------------------------ drawing

  function range(values) {
    var lo = Infinity, hi = -Infinity;
    for (var i = 0; i < values.length; i++) {
      if (values[i] < lo) { lo = values[i]; }
      if (values[i] > hi) { hi = values[i]; }
    }
    return [lo, hi];
  }

  // Map k in grey, stretched over its own min..max (mid-grey when flat).
  function drawMap(live, k) {
    var canvas = live.canvases[k];
    var map = live.maps[k];
    var lohi = range(map);
    var scale = lohi[1] > lohi[0] ? 1 / (lohi[1] - lohi[0]) : 0;
    var context = canvas.getContext('2d');
    var image = context.createImageData(canvas.width, canvas.height);
    for (var i = 0; i < map.length; i++) {
      var grey = Math.round((scale ? (map[i] - lohi[0]) * scale : 0.5) * 255);
      image.data.set([grey, grey, grey, 255], 4 * i);
    }
    context.putImageData(image, 0, 0);
  }

  // A canvas for each map, in a new column of the maps table.
  function addCanvases(live) {
    var header = document.querySelector('table.maps tr');
    if (header) { header.appendChild(element('th', 'live map')); }
    for (var k = 0; k < live.layer.filters; k++) {
      var canvas = element('canvas');
      canvas.width = live.data.outWidth;
      canvas.height = live.data.outHeight;
      canvas.title = 'filter ' + k + ': click to edit, hover to read a sum';
      watchCanvas(live, canvas, k);
      live.canvases.push(canvas);
      var row = document.getElementById('map-' + k);
      if (row) { row.appendChild(element('td', canvas, 'live')); }
      watchFilterPicture(live, row, k);
    }
  }

  function watchCanvas(live, canvas, k) {
    canvas.addEventListener('click', function () { selectFilter(live, k); });
    canvas.addEventListener('mousemove', function (event) { showSumAt(live, k, event); });
  }

  function watchFilterPicture(live, row, k) {
    var picture = row && row.querySelector('td.filter img');
    if (picture) { picture.addEventListener('click', function () { selectFilter(live, k); }); }
  }

  // A new element with `content` (text or an element) and `className`.
  function element(tag, content, className) {
    var node = document.createElement(tag);
    if (typeof content === 'string') { node.textContent = content; } else if (content) { node.appendChild(content); }
    if (className) { node.className = className; }
    return node;
  }

  function showStatus(text) {
    var line = document.getElementById('live-status');
    if (!line) {
      line = element('p', '', 'live-status');
      line.id = 'live-status';
      var top = document.querySelector('section.top');
      top.parentNode.insertBefore(line, top.nextSibling);
    }
    line.textContent = text;
  }

  // ------------------------------------------------------------ editing

  // The editor: filter k's weights as one FH×FW grid per input channel,
  // its bias as a slider and a number, and Reset.
  function selectFilter(live, k) {
    live.selected = k;
    var panel = editorPanel(live);
    panel.textContent = '';
    panel.appendChild(element('h3', 'filter ' + k));
    for (var c = 0; c < live.channelsPerGroup; c++) { panel.appendChild(weightGrid(live, k, c)); }
    panel.appendChild(biasControls(live, k));
    var reset = element('button', 'Reset');
    reset.addEventListener('click', function () { resetFilter(live, k); });
    panel.appendChild(reset);
    panel.appendChild(live.sumText);
  }

  function editorPanel(live) {
    if (!live.panel) {
      live.panel = element('aside', '', 'live-panel');
      live.sumText = element('pre', 'hover a live map to see one value as its sum', 'live-sum');
      live.panel.appendChild(live.sumText);
      document.body.appendChild(live.panel);
    }
    return live.panel;
  }

  function channelName(live, k, c) {
    var channel = Math.floor(k / live.filtersPerGroup) * live.channelsPerGroup + c;
    return 'channel ' + channel + (CHANNEL_NAMES[channel] ? ' (' + CHANNEL_NAMES[channel] + ')' : '');
  }

  // weight[k, c, ·, ·] as number inputs.
  function weightGrid(live, k, c) {
    var layer = live.layer;
    var table = element('table', '', 'live-weights');
    table.appendChild(element('caption', channelName(live, k, c)));
    for (var y = 0; y < layer.kernelHeight; y++) {
      var row = element('tr');
      for (var x = 0; x < layer.kernelWidth; x++) {
        var index = ((k * live.channelsPerGroup + c) * layer.kernelHeight + y) * layer.kernelWidth + x;
        row.appendChild(element('td', numberInput(live, live.weight, index, k)));
      }
      table.appendChild(row);
    }
    return table;
  }

  // An input for values[index] that recomputes map k on every change.
  function numberInput(live, values, index, k) {
    var input = element('input');
    input.type = 'number';
    input.step = 'any';
    input.value = formatNumber(values[index]);
    input.addEventListener('input', function () { setValue(live, values, index, k, input.value); });
    return input;
  }

  function setValue(live, values, index, k, text) {
    var value = parseFloat(text);
    if (!isFinite(value)) { return; }
    values[index] = value;
    if (values === live.bias) { syncBiasControls(live, value); }
    recompute(live, k);
  }

  function biasControls(live, k) {
    var box = element('p', 'bias ', 'live-bias');
    var bound = Math.max(1, 2 * Math.max.apply(null, Array.from(live.runBias, Math.abs)));
    var slider = element('input');
    slider.type = 'range';
    slider.min = -bound;
    slider.max = bound;
    slider.step = 'any';
    slider.value = live.bias[k];
    slider.addEventListener('input', function () { setValue(live, live.bias, k, k, slider.value); });
    live.biasSlider = slider;
    live.biasNumber = numberInput(live, live.bias, k, k);
    box.appendChild(slider);
    box.appendChild(live.biasNumber);
    return box;
  }

  function syncBiasControls(live, value) {
    if (live.biasSlider && document.activeElement !== live.biasSlider) { live.biasSlider.value = value; }
    if (live.biasNumber && document.activeElement !== live.biasNumber) { live.biasNumber.value = formatNumber(value); }
  }

  function resetFilter(live, k) {
    var start = k * live.filterSize;
    live.weight.set(live.runWeight.subarray(start, start + live.filterSize), start);
    live.bias[k] = live.runBias[k];
    selectFilter(live, k);
    recompute(live, k);
  }

  // Recomputes map k (one filter's dispatch) and redraws it; changes made
  // while a dispatch runs are coalesced into the next one.
  function recompute(live, k) {
    live.dirty[k] = true;
    if (!live.busy) { live.draining = drain(live); }
    return live.draining;
  }

  async function drain(live) {
    live.busy = true;
    try {
      var pending;
      while ((pending = Object.keys(live.dirty)).length) {
        var k = Number(pending[0]);
        delete live.dirty[k];
        await computeFilter(live, k);
        drawMap(live, k);
      }
    } catch (error) {
      showStatus('Live editing stopped: ' + error);
    }
    live.busy = false;
  }

  function formatNumber(value) { return String(Number(value.toPrecision(6))); }

  // ------------------------------------------------------------ one sum

  // Output (x, y) of filter k from the embedded input and the current
  // weights: the sum over each input channel's window, the bias, and the
  // value after the activation.
  function windowSums(live, k, x, y) {
    var layer = live.layer, data = live.data;
    var plane = data.width * data.height;
    var firstChannel = Math.floor(k / live.filtersPerGroup) * live.channelsPerGroup;
    var sums = [];
    for (var c = 0; c < live.channelsPerGroup; c++) {
      var sum = 0;
      for (var ky = 0; ky < layer.kernelHeight; ky++) {
        var inY = y * layer.stride - layer.padTop + ky * layer.dilation;
        for (var kx = 0; kx < layer.kernelWidth; kx++) {
          var inX = x * layer.stride - layer.padLeft + kx * layer.dilation;
          if (inY < 0 || inY >= data.height || inX < 0 || inX >= data.width) { continue; }
          var w = live.weight[((k * live.channelsPerGroup + c) * layer.kernelHeight + ky) * layer.kernelWidth + kx];
          sum += live.input[(firstChannel + c) * plane + inY * data.width + inX] * w;
        }
      }
      sums.push(sum);
    }
    var total = sums.reduce(function (a, b) { return a + b; }, 0) + live.bias[k];
    return { sums: sums, bias: live.bias[k], total: total, value: layer.activation === 1 ? Math.max(0, total) : total };
  }

  // The map pixel [x, y] under a pointer event's client position.
  function pixelAt(canvas, event) {
    var box = canvas.getBoundingClientRect();
    var clamp = function (value, size) { return Math.max(0, Math.min(size - 1, Math.floor(value))); };
    return [clamp((event.clientX - box.left) * canvas.width / box.width, canvas.width),
      clamp((event.clientY - box.top) * canvas.height / box.height, canvas.height)];
  }

  function showSumAt(live, k, event) {
    var pixel = pixelAt(live.canvases[k], event);
    editorPanel(live);
    live.sumText.textContent = sumText(live, k, pixel[0], pixel[1]);
  }

  function sumText(live, k, x, y) {
    var sum = windowSums(live, k, x, y);
    var lines = ['filter ' + k + ' at (' + x + ', ' + y + '):'];
    sum.sums.forEach(function (value, c) { lines.push('  ' + channelName(live, k, c) + ': ' + formatNumber(value)); });
    lines.push('  + bias ' + formatNumber(sum.bias) + ' = ' + formatNumber(sum.total));
    if (live.layer.activation === 1) { lines.push('  ReLU: ' + formatNumber(sum.value)); }
    lines.push('  map value there: ' + formatNumber(live.maps[k][y * live.data.outWidth + x]));
    return lines.join('\n');
  }

  // ------------------------------------------------------------ self-test

  // Worst |live − native| / max|native| over the embedded native maps.
  function compareNative(live) {
    var check = live.data.check;
    var native = decodeF32(check.values);
    var samples = Math.ceil(planeLength(live) / check.step);
    var worst = 0;
    for (var k = 0; k < check.filters; k++) {
      var largest = 0, error = 0;
      for (var i = 0; i < samples; i++) {
        var expected = native[k * samples + i];
        largest = Math.max(largest, Math.abs(expected));
        error = Math.max(error, Math.abs(live.maps[k][i * check.step] - expected));
      }
      worst = Math.max(worst, error / (largest || 1));
    }
    if (!(worst <= TOLERANCE)) { throw new Error('map differs from the native run by ' + worst); }
    return worst;
  }

  function largestMagnitude(values) {
    var lohi = range(values);
    return Math.max(Math.abs(lohi[0]), Math.abs(lohi[1])) || 1;
  }

  // Worst |a − b| / max|b| between two maps.
  function mapError(a, b) {
    var error = 0;
    for (var i = 0; i < a.length; i++) { error = Math.max(error, Math.abs(a[i] - b[i])); }
    return error / largestMagnitude(b);
  }

  function activate(live, value) { return live.layer.activation === 1 ? Math.max(0, value) : value; }

  // Adding δ to one bias moves that map by δ everywhere (through the
  // activation) and leaves every other map as it was; one filter's own
  // dispatch gives the same map as the whole layer's.
  async function checkBias(live) {
    var k = live.layer.filters > 1 ? 1 : 0, delta = -0.25;
    var before = live.maps.map(function (map) { return map.slice(); });
    live.bias[k] += delta;
    await computeAll(live);
    live.bias[k] = live.runBias[k];
    var moved = before[k].map(function (value) { return activate(live, value + delta); });
    if (!(mapError(live.maps[k], moved) <= TOLERANCE)) { throw new Error('map ' + k + ' did not move by the bias change'); }
    before.forEach(function (map, j) {
      if (j !== k && mapError(live.maps[j], map) > 0) { throw new Error('map ' + j + ' changed with bias ' + k); }
    });
    await computeFilter(live, k);
    if (!(mapError(live.maps[k], before[k]) <= TOLERANCE)) { throw new Error('one filter\'s dispatch differs from the layer\'s'); }
  }

  // The hover arithmetic (channel sums + bias) equals the live map value at
  // the corners and the centre of map k.
  function checkSums(live, k) {
    var w = live.data.outWidth, h = live.data.outHeight;
    var points = [[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1], [w >> 1, h >> 1]];
    var scale = largestMagnitude(live.maps[k]);
    points.forEach(function (p) {
      var value = live.maps[k][p[1] * w + p[0]];
      if (!(Math.abs(windowSums(live, k, p[0], p[1]).value - value) <= TOLERANCE * scale)) {
        throw new Error('sum at (' + p + ') of map ' + k + ' differs from the map');
      }
    });
  }

  // Through the editor: a weight typed into filter 0's grid changes its
  // map as the sums say, and Reset brings the run's map back.
  async function checkEditing(live) {
    var k = 0, before = live.maps[k].slice();
    selectFilter(live, k);
    var box = live.panel.querySelector('table.live-weights input');
    box.value = String(Number(box.value) + 0.5);
    box.dispatchEvent(new Event('input'));
    await live.draining;
    if (!(mapError(live.maps[k], before) > 0)) { throw new Error('editing a weight left map ' + k + ' as it was'); }
    checkSums(live, k);
    live.panel.querySelector('button').click();
    await live.draining;
    if (mapError(live.maps[k], before) > 0) { throw new Error('Reset did not bring map ' + k + ' back'); }
  }

  // The cursor over the middle of map 0 shows the sum of the pixel there.
  function checkHover(live) {
    var canvas = live.canvases[0], box = canvas.getBoundingClientRect();
    var event = new MouseEvent('mousemove', {
      clientX: Math.round(box.left + box.width / 2), clientY: Math.round(box.top + box.height / 2)
    });
    canvas.dispatchEvent(event);
    var pixel = pixelAt(canvas, event);
    if (live.sumText.textContent !== sumText(live, 0, pixel[0], pixel[1])) { throw new Error('hovering map 0 showed no sum'); }
  }

  async function selfTest(live) {
    var worst = compareNative(live);
    await checkBias(live);
    for (var k = 0; k < live.layer.filters; k++) { checkSums(live, k); }
    await checkEditing(live);
    checkHover(live);
    document.title = 'selftest ok ' + worst.toExponential(2);
  }

  // A timer that ticks until `promise` settles, so that a browser that
  // skips ahead over idle time still waits for the GPU.
  function keepAwake(promise) {
    var done = false;
    promise.then(function () { done = true; }, function () { done = true; });
    (function tick() { if (!done) { setTimeout(tick, 1); } })();
    return promise;
  }

  // ------------------------------------------------------------ start

  function goStatic(reason) {
    document.body.dataset.live = 'static';
    showStatus(reason);
  }

  async function start(testing) {
    var live = readLive();
    live.device = await openDevice();
    if (!live.device) {
      goStatic('Live editing needs a browser with WebGPU; the pictures above and below are the run\'s own.');
      if (testing) { document.title = 'selftest fail no WebGPU adapter'; }
      return;
    }
    live.pipeline = await buildPipeline(live.device);
    uploadInput(live);
    await computeAll(live);
    addCanvases(live);
    for (var k = 0; k < live.layer.filters; k++) { drawMap(live, k); }
    document.body.dataset.live = 'webgpu';
    showStatus('Live: the maps in the last column are computed in this browser by the project\'s own shader on ' +
      live.data.name + '\'s preview. ' +
      'Click a map or its filter to edit it; hover a live map to read one value\'s sum.');
    if (testing) { await selfTest(live); }
  }

  function main() {
    var testing = location.hash === '#selftest';
    var running = start(testing).catch(function (error) {
      goStatic('Live editing is off: ' + error);
      if (testing) { document.title = 'selftest fail ' + error; }
    });
    if (testing) { keepAwake(running); }
  }

  main();
})();
