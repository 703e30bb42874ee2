// live.js: index.html computes its own maps in a WebGPU browser, and
// re-plans its layer.
//
// It runs the project's shader (shaders/conv2d_direct.wgsl, embedded
// verbatim in #convmaps-wgsl) on the photo's preview with the run's weights
// and biases (#convmaps-data), draws every map (view.js: any of the command
// line's colour maps and normalisations, a ReLU view, the selected map over
// the photo), lets a person edit a filter's weights and bias, and shows,
// under the cursor, one output value as its sum channel by channel plus the
// one bias. The layer can be re-planned (filters, kernel, stride, padding,
// dilation, groups): the formula, the output size and the PyTorch line
// follow at once, and the maps are recomputed with fresh weights, the
// command line's own for the seed (random.js).
//
// window.convmaps gains setLayer(options), setView(view) and selftest().
// index.html#selftest runs selftest() and writes its verdict, `selftest ok
// <worst relative error>` or `selftest fail <reason>`, into the title;
// index.html#layer=<JSON options> re-plans the layer once the page is up
// and writes what setLayer answered into <body data-replanned>; `&view=<JSON>`
// sets the view and `&map=<k>` shows map k over the photo. <body
// data-live> is "webgpu" once live maps are drawn, "static" when they
// cannot be (the formula and the PyTorch line still follow a re-plan).
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
  // The most output values (all maps together) a re-planned layer may
  // have: 64 Mi values, 256 MiB of f32 on the GPU and as much again read back.
  var MOST_VALUES = 64 * 1024 * 1024;
  // The range of each option a re-planned layer takes.
  var LIMITS = { filters: [1, 256], kernel: [1, 15], stride: [1, 8], padding: [0, 16], dilation: [1, 8] };
  // The controls of a re-plan, in order: option and label.
  var PLAN_FIELDS = [
    ['filters', 'filters K'], ['kernel', 'kernel F'], ['stride', 'stride'], ['padding', 'padding'],
    ['dilation', 'dilation'], ['groups', 'groups G'], ['seed', 'seed']
  ];

  // ------------------------------------------------------------ data

  // Base64 of little-endian f32 values, as a Float32Array.
  function decodeF32(text) {
    var bytes = ConvmapsView.decodeBase64(text);
    var view = new DataView(bytes.buffer);
    var values = new Float32Array(bytes.length / 4);
    for (var i = 0; i < values.length; i++) { values[i] = view.getFloat32(4 * i, true); }
    return values;
  }

  // The preview's 8-bit RGB as the layer's input [3, H, W]: sample / 255.
  function inputTensor(data) {
    var rgb = ConvmapsView.decodeBase64(data.rgb);
    var plane = data.width * data.height;
    var input = new Float32Array(3 * plane);
    for (var i = 0; i < plane; i++) {
      for (var c = 0; c < 3; c++) { input[c * plane + i] = rgb[3 * i + c] / 255; }
    }
    return input;
  }

  // Everything the page computes with: the data, the input, the run's
  // layer, the current layer with its weights and biases, the latest maps
  // and how they are drawn.
  function readLive() {
    var data = JSON.parse(document.getElementById('convmaps-data').textContent);
    var layer = Object.assign({}, data.layer, { outHeight: data.outHeight, outWidth: data.outWidth });
    // A layer without bias gets zero biases (the same sums), so that its
    // biases can be edited too.
    var bias = layer.hasBias ? decodeF32(data.bias) : new Float32Array(layer.filters);
    var live = {
      data: data,
      input: inputTensor(data),
      tables: ConvmapsView.decodeTables(data.view.colormaps),
      view: { colormap: data.view.colormap, normalize: ConvmapsView.parseNormalize(data.view.normalize), relu: false },
      opacity: 0.6,
      seed: data.seed,
      init: data.init,
      canvases: [],
      busy: false,
      replanned: false
    };
    live.run = { layer: layer, weight: decodeF32(data.weight), bias: bias };
    useLayer(live, layer, live.run.weight, bias);
    return live;
  }

  // Makes `layer` with these weights and biases the one the page computes;
  // editing starts from them and Reset returns to them.
  function useLayer(live, layer, weight, bias) {
    live.layer = layer;
    live.channelsPerGroup = layer.channels / layer.groups;
    live.filtersPerGroup = layer.filters / layer.groups;
    live.filterSize = live.channelsPerGroup * layer.kernelHeight * layer.kernelWidth;
    live.startWeight = weight;
    live.startBias = bias;
    live.weight = weight.slice();
    live.bias = bias.slice();
    live.maps = [];
    live.extents = [];
    live.dirty = {};
    live.selected = 0;
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
      filters: filters, out_height: layer.outHeight, out_width: layer.outWidth,
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

  // The input on the GPU, all channels.
  function uploadInput(live) {
    live.inputBuffer = storageBuffer(live.device, live.input);
    splitGroups(live);
  }

  // Each group's channels alone on the GPU (for one filter's dispatch).
  function splitGroups(live) {
    (live.groupInputs || []).forEach(function (buffer) {
      if (buffer !== live.inputBuffer) { buffer.destroy(); }
    });
    var plane = live.data.width * live.data.height;
    var perGroup = live.channelsPerGroup * plane;
    live.groupInputs = [];
    for (var g = 0; g < live.layer.groups; g++) {
      live.groupInputs.push(live.layer.groups === 1 ? live.inputBuffer
        : storageBuffer(live.device, live.input.subarray(g * perGroup, (g + 1) * perGroup)));
    }
  }

  function planeLength(live) { return live.layer.outWidth * live.layer.outHeight; }

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

  function colourTable(live) { return live.tables[live.view.colormap]; }

  function isDiverging(live) { return live.data.view.diverging.indexOf(live.view.colormap) >= 0; }

  // [min, max] over every map as drawn.
  function allExtent(live) {
    return live.extents.reduce(function (all, extent) {
      return [Math.min(all[0], extent[0]), Math.max(all[1], extent[1])];
    }, [Infinity, -Infinity]);
  }

  // The range map k is drawn over, as the view says.
  function mapRange(live, k) {
    return ConvmapsView.rangeFor(live.view, live.extents[k], allExtent(live), isDiverging(live));
  }

  function measure(live, k) { live.extents[k] = ConvmapsView.extent(live.maps[k], live.view.relu); }

  function drawMap(live, k) {
    ConvmapsView.paint(live.canvases[k], live.maps[k], live.view.relu, mapRange(live, k), colourTable(live));
  }

  // Every map, the selected one over the photo, and its colour bar.
  function drawAll(live) {
    for (var k = 0; k < live.maps.length; k++) { measure(live, k); }
    for (var j = 0; j < live.maps.length; j++) { drawMap(live, j); }
    drawSelected(live);
  }

  // After map k changed: it alone, or every map when the range of all
  // that the view draws them over moved.
  function redraw(live, k) {
    var before = allExtent(live);
    measure(live, k);
    var after = allExtent(live);
    if (live.view.normalize === 'global' && (before[0] !== after[0] || before[1] !== after[1])) {
      drawAll(live);
      return;
    }
    drawMap(live, k);
    if (k === live.selected) { drawSelected(live); }
  }

  function describeNormalize(normalize) {
    if (normalize === 'per-map') { return 'its own range'; }
    if (normalize === 'global') { return 'the range of all maps'; }
    return 'the fixed range ' + normalize[0] + ' to ' + normalize[1];
  }

  // The selected map over the photo with the overlay's opacity, and the
  // colour bar of its range.
  function drawSelected(live) {
    var k = live.selected, map = live.maps[k];
    if (!map || !live.overlay) { return; }
    live.canvases.forEach(function (canvas, j) { canvas.classList.toggle('selected', j === k); });
    var overlay = live.overlay;
    overlay.width = live.layer.outWidth;
    overlay.height = live.layer.outHeight;
    var range = mapRange(live, k);
    ConvmapsView.paint(overlay, map, live.view.relu, range, colourTable(live));
    overlay.style.opacity = live.opacity;
    var caption = 'filter ' + k + ' in ' + live.view.colormap + ' over ' + describeNormalize(live.view.normalize) +
      (live.view.relu ? ', negative values shown as 0 (ReLU view)' : '');
    var bar = ConvmapsView.colourBar(colourTable(live), range, caption);
    live.bar.replaceWith(bar);
    live.bar = bar;
  }

  // The preview, drawn once under the overlay.
  function drawPhoto(live, canvas) {
    var data = live.data, rgb = ConvmapsView.decodeBase64(data.rgb);
    canvas.width = data.width;
    canvas.height = data.height;
    var context = canvas.getContext('2d');
    var image = context.createImageData(data.width, data.height);
    for (var i = 0; i < data.width * data.height; i++) {
      image.data.set([rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2], 255], 4 * i);
    }
    context.putImageData(image, 0, 0);
  }

  // One canvas per map of the current layer, in the live grid.
  function makeCanvases(live) {
    live.grid.textContent = '';
    live.canvases = [];
    for (var k = 0; k < live.layer.filters; k++) {
      var canvas = element('canvas');
      canvas.width = live.layer.outWidth;
      canvas.height = live.layer.outHeight;
      canvas.title = 'filter ' + k + ': click to edit it and show it over the photo, hover to read a sum';
      watchCanvas(live, canvas, k);
      live.canvases.push(canvas);
      var figure = element('figure', canvas);
      figure.appendChild(element('figcaption', 'filter ' + k));
      live.grid.appendChild(figure);
    }
  }

  function watchCanvas(live, canvas, k) {
    canvas.addEventListener('click', function () { selectFilter(live, k); });
    canvas.addEventListener('mousemove', function (event) { showSumAt(live, k, event); });
  }

  // A filter's picture in the run's table opens that filter while the page
  // computes the run's layer.
  function watchFilterPictures(live) {
    for (var k = 0; k < live.run.layer.filters; k++) {
      var picture = document.querySelector('#map-' + k + ' td.filter img');
      if (picture) { picture.addEventListener('click', selectRunFilter.bind(null, live, k)); }
    }
  }

  function selectRunFilter(live, k) { if (!live.replanned) { selectFilter(live, k); } }

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

  // ------------------------------------------------------------ the section

  // The live section after the page's top: the re-plan controls, the
  // command line, the view controls, the selected map over the photo with
  // its colour bar, and the grid of live maps.
  function buildSection(live) {
    var section = element('section', '', 'live');
    section.id = 'convmaps-live';
    section.appendChild(element('h2', 'Live in this browser'));
    section.appendChild(planForm(live));
    live.planNote = element('p', '', 'replan-note');
    section.appendChild(live.planNote);
    live.command = element('code');
    live.command.dataset.command = '';
    section.appendChild(element('p', live.command, 'command'));
    live.viewForm = viewForm(live);
    section.appendChild(live.viewForm);
    var row = element('div', '', 'live-row');
    row.appendChild(overlayFigure(live));
    live.bar = element('div');
    row.appendChild(live.bar);
    section.appendChild(row);
    live.grid = element('div', '', 'live-grid');
    section.appendChild(live.grid);
    var top = document.querySelector('section.top');
    top.parentNode.insertBefore(section, top.nextSibling);
    live.section = section;
  }

  function button(text, action) {
    var node = element('button', text);
    node.type = 'button';
    node.addEventListener('click', action);
    return node;
  }

  // Number boxes for each option of the layer; a change re-plans it.
  function planForm(live) {
    var form = element('form', '', 'replan');
    form.addEventListener('submit', function (event) { event.preventDefault(); });
    live.planInputs = {};
    PLAN_FIELDS.forEach(function (field) {
      var input = element('input');
      input.name = field[0];
      input.type = field[0] === 'kernel' ? 'text' : 'number';
      input.addEventListener('change', function () { planFromForm(live); });
      live.planInputs[field[0]] = input;
      form.appendChild(ConvmapsView.labelled(field[1], input));
    });
    var init = element('select');
    ['random'].concat(ConvmapsBanks.NAMES).forEach(function (name) { init.appendChild(element('option', name)); });
    init.addEventListener('change', function () { planFromForm(live); });
    live.planInputs.init = init;
    form.appendChild(ConvmapsView.labelled('weights', init));
    form.appendChild(button('Fresh weights', function () {
      live.planInputs.seed.value = String(Number(live.planInputs.seed.value) + 1);
      init.value = 'random';
      planFromForm(live);
    }));
    form.appendChild(button('The run\'s layer', function () { restoreRun(live); }));
    return form;
  }

  function fillPlanForm(live) {
    var layer = live.layer;
    var values = {
      filters: layer.filters, stride: layer.stride, dilation: layer.dilation, groups: layer.groups, seed: live.seed,
      kernel: layer.kernelHeight === layer.kernelWidth ? layer.kernelHeight : layer.kernelHeight + 'x' + layer.kernelWidth,
      padding: layer.padding === null ? layer.padTop + ',' + layer.padLeft + ',' + layer.padBottom + ',' + layer.padRight : layer.padding
    };
    Object.keys(values).forEach(function (name) { live.planInputs[name].value = String(values[name]); });
    live.planInputs.init.value = live.init;
    live.planInputs.padding.type = layer.padding === null ? 'text' : 'number';
  }

  function planFromForm(live) {
    var options = {};
    PLAN_FIELDS.forEach(function (field) { options[field[0]] = live.planInputs[field[0]].value.trim(); });
    options.init = live.planInputs.init.value;
    setLayer(live, options).catch(function () {});
  }

  // A colour map, a normalisation (with its fixed range) and the ReLU
  // view (view.js), and the overlay's opacity; a change redraws every map.
  function viewForm(live) {
    live.viewControls = ConvmapsView.controls(Object.keys(live.tables), function (view) {
      try {
        setView(live, view);
      } catch (error) {
        live.planNote.textContent = String(error.message || error);
      }
    });
    var opacity = element('input');
    opacity.type = 'range';
    opacity.min = 0;
    opacity.max = 1;
    opacity.step = 0.05;
    opacity.addEventListener('input', function () { setView(live, { opacity: Number(opacity.value) }); });
    live.opacityInput = opacity;
    live.viewControls.element.appendChild(ConvmapsView.labelled('over the photo', opacity));
    return live.viewControls.element;
  }

  function fillViewForm(live) {
    if (!live.viewControls) { return; }
    live.viewControls.fill(live.view, allExtent(live));
    live.opacityInput.value = String(live.opacity);
  }

  // The photo with the selected map over it.
  function overlayFigure(live) {
    var frame = element('div', '', 'overlay');
    var photo = element('canvas', '', 'photo');
    drawPhoto(live, photo);
    live.overlay = element('canvas', '', 'map');
    frame.appendChild(photo);
    frame.appendChild(live.overlay);
    var figure = element('figure', frame);
    figure.appendChild(element('figcaption', 'the selected map over the photo (click a map below to choose it)'));
    return figure;
  }

  // setView({colormap, normalize, relu, opacity}): any of them; the rest
  // stay. Redraws every live map; returns the whole view.
  function setView(live, options) {
    var next = ConvmapsView.merge(live.view, options, live.tables);
    if (options.opacity !== undefined) {
      var opacity = Number(options.opacity);
      if (!(opacity >= 0 && opacity <= 1)) { throw new Error('opacity ' + JSON.stringify(options.opacity) + ' is not from 0 to 1'); }
      live.opacity = opacity;
    }
    live.view = next;
    if (live.maps.length) { drawAll(live); }
    fillViewForm(live);
    return { colormap: next.colormap, normalize: next.normalize, relu: next.relu, opacity: live.opacity };
  }

  // ------------------------------------------------------------ re-planning

  // A whole number from `limits[0]` to `limits[1]`, or an error naming it.
  function whole(name, value, limits) {
    var number = typeof value === 'string' && value.trim() === '' ? NaN : Number(value);
    if (!Number.isInteger(number) || number < limits[0] || number > limits[1]) {
      throw new Error(name + ' ' + JSON.stringify(value) + ' is not a whole number from ' + limits[0] + ' to ' + limits[1]);
    }
    return number;
  }

  // A kernel size: F, [FH, FW] or 'FHxFW'.
  function readKernel(value) {
    var sides = Array.isArray(value) ? value : String(value).split(/[x×]/);
    if (sides.length === 1) { sides = [sides[0], sides[0]]; }
    if (sides.length !== 2) { throw new Error('kernel ' + JSON.stringify(value) + ' is not F, [FH, FW] or FHxFW'); }
    return sides.map(function (side) { return whole('kernel', side, LIMITS.kernel); });
  }

  // Padding as [top, left, bottom, right]: a number of pixels on every
  // side, 'valid', 'same' (stride 1: D·(F−1) zeros per axis, the odd one at
  // the bottom or right, as the command line and PyTorch pad), or the four
  // sides 'top,left,bottom,right'.
  function readPadding(value, kernel, dilation, stride) {
    if (value === 'valid') { return [0, 0, 0, 0]; }
    if (value === 'same') {
      if (stride !== 1) { throw new Error('padding \'same\' needs stride 1 (got ' + stride + '), as in PyTorch'); }
      var rows = dilation * (kernel[0] - 1), columns = dilation * (kernel[1] - 1);
      return [rows >> 1, columns >> 1, rows - (rows >> 1), columns - (columns >> 1)];
    }
    var sides = Array.isArray(value) ? value : String(value).split(',');
    if (sides.length === 1) { sides = [sides[0], sides[0], sides[0], sides[0]]; }
    if (sides.length !== 4) { throw new Error('padding ' + JSON.stringify(value) + ' is not a number of pixels, valid, same or top,left,bottom,right'); }
    return sides.map(function (side) { return whole('padding', side, LIMITS.padding); });
  }

  // Outputs along one axis: ⌊(size + pads − D·(F − 1) − 1) / stride⌋ + 1.
  function outputSide(size, pads, kernel, dilation, stride) {
    return Math.floor((size + pads - dilation * (kernel - 1) - 1) / stride) + 1;
  }

  // The layer `options` ask for, each option the current layer's where not
  // given; checked against the preview. Throws an Error saying what is wrong.
  function planLayer(live, options) {
    var base = live.layer, data = live.data;
    var given = function (name, fallback) { return options[name] === undefined ? fallback : options[name]; };
    var kernel = readKernel(given('kernel', [base.kernelHeight, base.kernelWidth]));
    var filters = whole('filters', given('filters', base.filters), LIMITS.filters);
    var stride = whole('stride', given('stride', base.stride), LIMITS.stride);
    var dilation = whole('dilation', given('dilation', base.dilation), LIMITS.dilation);
    var groups = whole('groups', given('groups', base.groups), [1, base.channels]);
    var pads = readPadding(given('padding', base.padding === null ? [base.padTop, base.padLeft, base.padBottom, base.padRight] : base.padding),
      kernel, dilation, stride);
    if (base.channels % groups || filters % groups) {
      throw new Error('groups ' + groups + ' must divide the ' + base.channels + ' input channels and the ' + filters + ' filters');
    }
    var layer = {
      filters: filters, channels: base.channels, kernelHeight: kernel[0], kernelWidth: kernel[1], stride: stride,
      padTop: pads[0], padLeft: pads[1], padBottom: pads[2], padRight: pads[3],
      padding: pads.every(function (pad) { return pad === pads[0]; }) ? pads[0] : null,
      dilation: dilation, groups: groups, hasBias: Boolean(given('bias', base.hasBias)), activation: base.activation,
      outHeight: outputSide(data.height, pads[0] + pads[2], kernel[0], dilation, stride),
      outWidth: outputSide(data.width, pads[1] + pads[3], kernel[1], dilation, stride)
    };
    if (layer.outHeight < 1 || layer.outWidth < 1) {
      throw new Error('a ' + kernel[0] + '×' + kernel[1] + ' kernel with dilation ' + dilation + ' spans ' +
        (dilation * (kernel[0] - 1) + 1) + '×' + (dilation * (kernel[1] - 1) + 1) + ' pixels, more than the padded ' +
        (data.width + pads[1] + pads[3]) + '×' + (data.height + pads[0] + pads[2]) + ' input');
    }
    if (filters * layer.outHeight * layer.outWidth > MOST_VALUES) {
      throw new Error(filters + ' maps of ' + layer.outWidth + '×' + layer.outHeight + ' are more values than the page computes (' +
        MOST_VALUES + ')');
    }
    return layer;
  }

  function readSeed(value) {
    var text = String(value).trim();
    if (!/^[0-9]{1,20}$/.test(text) || BigInt(text) >= (1n << 64n)) {
      throw new Error('seed ' + JSON.stringify(value) + ' is not a whole number from 0 to 2^64 − 1');
    }
    return text;
  }

  function parameterCount(layer) {
    var weights = layer.filters * (layer.channels / layer.groups) * layer.kernelHeight * layer.kernelWidth;
    var biases = layer.hasBias ? layer.filters : 0;
    return { weights: weights, biases: biases, total: weights + biases };
  }

  // (C/G·FH·FW + 1)·K = N, as the native summary writes it.
  function formula(layer) {
    var channels = layer.groups === 1 ? String(layer.channels) : layer.channels + '/' + layer.groups;
    var perFilter = channels + '·' + layer.kernelHeight + '·' + layer.kernelWidth;
    var total = parameterCount(layer).total;
    return layer.hasBias ? '(' + perFilter + ' + 1)·' + layer.filters + ' = ' + total : perFilter + '·' + layer.filters + ' = ' + total;
  }

  // nn.Conv2d(3, K, kernel_size=F, …) with only the arguments that differ
  // from PyTorch's defaults, as the native LayerSpec::pytorch_line writes it.
  function pytorchLine(layer) {
    var pair = function (a, b) { return a === b ? String(a) : '(' + a + ', ' + b + ')'; };
    var symmetric = layer.padTop === layer.padBottom && layer.padLeft === layer.padRight;
    var line = 'nn.Conv2d(' + layer.channels + ', ' + layer.filters + ', kernel_size=' + pair(layer.kernelHeight, layer.kernelWidth);
    [['stride', layer.stride !== 1, layer.stride],
      ['padding', symmetric && layer.padTop + layer.padLeft > 0, pair(layer.padTop, layer.padLeft)],
      ['dilation', layer.dilation !== 1, layer.dilation],
      ['groups', layer.groups !== 1, layer.groups],
      ['bias', !layer.hasBias, 'False']].forEach(function (argument) {
      if (argument[1]) { line += ', ' + argument[0] + '=' + argument[2]; }
    });
    line += ')';
    if (!symmetric) {
      line += '  # after F.pad(x, (' + [layer.padLeft, layer.padRight, layer.padTop, layer.padBottom].join(', ') + '))';
    }
    return line;
  }

  // A word the shell reads as it is, quoted where it needs to be.
  function shellWord(text) {
    return /^[A-Za-z0-9_.\/:=,+-]+$/.test(text) ? text : '\'' + text.replace(/'/g, '\'\\\'\'') + '\'';
  }

  // The command line that makes this layer with the same weights natively.
  function commandLine(live, layer) {
    var words = ['convmaps', shellWord(live.data.name), '-k', layer.filters, '-f',
      layer.kernelHeight === layer.kernelWidth ? layer.kernelHeight : layer.kernelHeight + 'x' + layer.kernelWidth];
    if (layer.stride !== 1) { words.push('--stride', layer.stride); }
    if (layer.padding === null) {
      words.push('--padding', 'same');
    } else if (layer.padding > 0) {
      words.push('--padding', layer.padding);
    }
    if (layer.dilation !== 1) { words.push('--dilation', layer.dilation); }
    if (layer.groups !== 1) { words.push('--groups', layer.groups); }
    if (!layer.hasBias) { words.push('--no-bias'); }
    if (layer.activation === 1) { words.push('--activation', 'relu'); }
    if (live.init === 'random') { words.push('--seed', live.seed); } else { words.push('--init', live.init); }
    return words.join(' ');
  }

  function setText(selector, text) {
    var node = document.querySelector(selector);
    if (node) { node.textContent = text; }
  }

  // The page's top (formula, its numbers, the layer's line, the PyTorch
  // line) and the command line, for the current layer.
  function showPlan(live) {
    var layer = live.layer, count = parameterCount(layer);
    if (!live.replanned) {
      live.texts.forEach(function (saved) { saved.node.textContent = saved.text; });
      live.command.textContent = '';
      live.planNote.textContent = 'The run\'s layer. Change any option above to re-plan it in this browser.';
      return;
    }
    setText('section.top .parameters', formula(layer));
    setText('section.top p.detail', count.weights + ' weights (' + layer.filters + ' filters × ' + (layer.channels / layer.groups) +
      ' channels × ' + layer.kernelHeight + '×' + layer.kernelWidth + ') + ' + count.biases + ' biases (one per filter)');
    setText('section.top p.layer', live.data.width + '×' + live.data.height + ' input → ' + layer.filters + ' maps of ' +
      layer.outWidth + '×' + layer.outHeight + '; kernel ' + layer.kernelHeight + '×' + layer.kernelWidth + ', stride ' +
      layer.stride + ', dilation ' + layer.dilation + ', groups ' + layer.groups + '; weights: ' + weightsText(live) +
      ', re-planned in this browser');
    setText('[data-pytorch] code', pytorchLine(layer));
    live.command.textContent = commandLine(live, layer);
    live.planNote.classList.remove('error');
    live.planNote.textContent = 'Re-planned in this browser. The grid, the filters and the table further down are the run\'s layer, ' +
      pytorchLine(live.run.layer) + '; this command makes the layer above with the same weights:';
  }

  // The top's texts as the run wrote them, to come back to.
  function saveTexts() {
    var saved = [];
    ['section.top .parameters', 'section.top p.detail', 'section.top p.layer', '[data-pytorch] code'].forEach(function (selector) {
      var node = document.querySelector(selector);
      if (node) { saved.push({ node: node, text: node.textContent }); }
    });
    return saved;
  }

  // Where the weights came from, as the native summary says it.
  function weightsText(live) {
    return live.init === 'random' ? 'random: kaiming-uniform (seed ' + live.seed + ')' : live.init;
  }

  // What setLayer answers.
  function planAnswer(live) {
    var layer = live.layer;
    return {
      formula: formula(layer), outputWidth: layer.outWidth, outputHeight: layer.outHeight,
      pytorch: pytorchLine(layer), parameters: parameterCount(layer).total, command: commandLine(live, layer),
      weights: weightsText(live)
    };
  }

  // setLayer(options): re-plans the layer (options as planLayer reads them,
  // plus `seed`); one re-plan at a time, in the order asked.
  function setLayer(live, options) {
    var next = (live.planning || Promise.resolve()).catch(function () {}).then(function () {
      return replan(live, options || {});
    });
    live.planning = next;
    return next.catch(function (error) {
      live.planNote.classList.add('error');
      live.planNote.textContent = 'Not re-planned: ' + (error.message || error);
      throw error;
    });
  }

  async function replan(live, options) {
    var layer = planLayer(live, options);
    var seed = readSeed(options.seed === undefined ? live.seed : options.seed);
    var init = options.init === undefined ? live.init : String(options.init);
    var fresh = freshWeights(layer, init, seed);
    await live.draining;
    live.seed = seed;
    live.init = init;
    live.replanned = true;
    useLayer(live, layer, fresh.weight, layer.hasBias ? fresh.bias : new Float32Array(layer.filters));
    return showLayer(live);
  }

  // The weights `init` gives `layer`: the command line's random ones for
  // the seed, or a built-in bank's (with zero biases).
  function freshWeights(layer, init, seed) {
    var shape = {
      filters: layer.filters, channelsPerGroup: layer.channels / layer.groups,
      kernelHeight: layer.kernelHeight, kernelWidth: layer.kernelWidth, hasBias: layer.hasBias
    };
    if (init === 'random') { return ConvmapsRandom.kaimingUniform(shape, seed); }
    if (ConvmapsBanks.NAMES.indexOf(init) < 0) {
      throw new Error('weights ' + JSON.stringify(init) + ' are not random or one of ' + ConvmapsBanks.NAMES.join(', '));
    }
    return { weight: ConvmapsBanks.weights(init, shape), bias: new Float32Array(layer.filters) };
  }

  // Back to the run's layer, its weights and its texts.
  async function restoreRun(live) {
    await (live.planning || Promise.resolve()).catch(function () {});
    await live.draining;
    live.replanned = false;
    live.seed = live.data.seed;
    live.init = live.data.init;
    useLayer(live, live.run.layer, live.run.weight, live.run.bias);
    return showLayer(live);
  }

  // The current layer's texts, form and (with WebGPU) maps.
  async function showLayer(live) {
    showPlan(live);
    fillPlanForm(live);
    if (live.panel) { live.panel.hidden = true; }
    if (live.device) {
      splitGroups(live);
      await computeAll(live);
      makeCanvases(live);
      drawAll(live);
      fillViewForm(live);
    }
    return planAnswer(live);
  }

  // ------------------------------------------------------------ editing

  // The editor: filter k's weights as one FH×FW grid per input channel,
  // its bias as a slider and a number, and Reset. Filter k is also the
  // map shown over the photo.
  function selectFilter(live, k) {
    live.selected = k;
    drawSelected(live);
    var panel = editorPanel(live);
    panel.textContent = '';
    panel.appendChild(button('close', function () { panel.hidden = true; }));
    panel.appendChild(element('h3', 'filter ' + k));
    for (var c = 0; c < live.channelsPerGroup; c++) { panel.appendChild(weightGrid(live, k, c)); }
    panel.appendChild(biasControls(live, k));
    panel.appendChild(bankChoice(live, k));
    panel.appendChild(button('Reset', function () { resetFilter(live, k); }));
    panel.appendChild(live.sumText);
    panel.hidden = false;
  }

  // A choice of bank whose filter k replaces filter k (bias 0).
  function bankChoice(live, k) {
    var choice = element('select');
    choice.appendChild(element('option', 'load filter ' + k + ' of a bank…'));
    ConvmapsBanks.NAMES.forEach(function (name) { choice.appendChild(element('option', name)); });
    choice.addEventListener('change', function () { if (choice.selectedIndex > 0) { loadBankFilter(live, k, choice.value); } });
    return element('p', choice);
  }

  // Filter k of bank `name` for the current layer, into filter k; returns
  // the recomputation.
  function loadBankFilter(live, k, name) {
    var layer = live.layer, bank = freshWeights(layer, name, 0).weight;
    live.weight.set(bank.subarray(k * live.filterSize, (k + 1) * live.filterSize), k * live.filterSize);
    live.bias[k] = 0;
    selectFilter(live, k);
    return recompute(live, k);
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
    var bound = Math.max(1, 2 * Math.max.apply(null, Array.from(live.startBias, Math.abs)));
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
    live.weight.set(live.startWeight.subarray(start, start + live.filterSize), start);
    live.bias[k] = live.startBias[k];
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
        redraw(live, k);
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
    lines.push('  map value there: ' + formatNumber(live.maps[k][y * live.layer.outWidth + x]));
    return lines.join('\n');
  }

  // ------------------------------------------------------------ self-test

  // Worst |live − native| / max|native| over native maps the run embedded:
  // `check` = {filters, step, values}, each map sampled every `step` values.
  function compareNative(live, check, what) {
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
    if (!(worst <= TOLERANCE)) { throw new Error(what + ': map differs from the native run by ' + worst); }
    return worst;
  }

  function largestMagnitude(values) {
    var lohi = ConvmapsView.extent(values, false);
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
    live.bias[k] = live.startBias[k];
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
    var w = live.layer.outWidth, h = live.layer.outHeight;
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
    Array.from(live.panel.querySelectorAll('button')).filter(function (node) { return node.textContent === 'Reset'; })[0].click();
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

  // The photo pixels output (x, y) reads along one axis, clipped to the
  // photo: null where it reads only padding.
  function span(at, stride, pad, kernel, dilation, size) {
    var first = at * stride - pad, last = first + dilation * (kernel - 1);
    var clipped = [Math.max(first, 0), Math.min(last, size - 1)];
    return clipped[0] > clipped[1] ? null : clipped;
  }

  // The page's receptiveField (the explorer's walk through the run's
  // steps) gives, at the corners and the centre of the run's maps, the
  // window the layer's geometry says. Skipped where the preview is not
  // the run's input (a photo over 1024 pixels).
  function checkFields(live) {
    var explorer = window.convmaps, layer = live.run.layer, data = live.data;
    if (!explorer.receptiveField) { throw new Error('the page has no receptiveField'); }
    var first = explorer.layers()[0];
    if (first.shape[1] !== layer.outHeight || first.shape[2] !== layer.outWidth) { return; }
    var w = layer.outWidth, h = layer.outHeight;
    [[0, 0], [w - 1, h - 1], [w >> 1, h >> 1], [w - 1, 0]].forEach(function (p) {
      var columns = span(p[0], layer.stride, layer.padLeft, layer.kernelWidth, layer.dilation, data.width);
      var rows = span(p[1], layer.stride, layer.padTop, layer.kernelHeight, layer.dilation, data.height);
      var expected = columns && rows ? { x0: columns[0], y0: rows[0], x1: columns[1], y1: rows[1] } : null;
      var field = explorer.receptiveField(first.name, p[0], p[1]);
      if (JSON.stringify(field) !== JSON.stringify(expected)) {
        throw new Error('receptive field at (' + p + ') is ' + JSON.stringify(field) + ', the geometry says ' + JSON.stringify(expected));
      }
    });
  }

  // The colour of pixel i of map 0's canvas.
  function canvasColour(live, i) {
    var canvas = live.canvases[0];
    var x = i % canvas.width, y = Math.floor(i / canvas.width);
    return Array.from(canvas.getContext('2d').getImageData(x, y, 1, 1).data.slice(0, 3));
  }

  // setView redraws map 0 in rdbu over a fixed −1..1 with the ReLU view,
  // pixel for pixel as the table says, and in gray over its own range with
  // its minimum black and its maximum white; an unknown colour map is
  // refused. The view is then put back.
  function checkView(live) {
    var before = setView(live, {});
    var map = live.maps[0], table = live.tables.rdbu;
    setView(live, { colormap: 'rdbu', normalize: [-1, 1], relu: true });
    [0, map.length >> 1, map.length - 1].forEach(function (i) {
      var at = 3 * ConvmapsView.level(Math.max(0, map[i]), [-1, 1]);
      var expected = [table[at], table[at + 1], table[at + 2]];
      if (canvasColour(live, i).join() !== expected.join()) { throw new Error('setView drew pixel ' + i + ' of map 0 in the wrong colour'); }
    });
    setView(live, { colormap: 'gray', normalize: 'per-map', relu: false });
    var lowest = 0, highest = 0;
    for (var i = 1; i < map.length; i++) {
      if (map[i] < map[lowest]) { lowest = i; }
      if (map[i] > map[highest]) { highest = i; }
    }
    if (map[highest] > map[lowest] && (canvasColour(live, lowest).join() !== '0,0,0' || canvasColour(live, highest).join() !== '255,255,255')) {
      throw new Error('per-map gray does not span black to white on map 0');
    }
    var refused = false;
    try { setView(live, { colormap: 'no-such-map' }); } catch (error) { refused = true; }
    if (!refused) { throw new Error('setView took an unknown colour map'); }
    setView(live, before);
  }

  // setLayer to the run's second geometry: the formula, the PyTorch line
  // (also as the page shows it) and the output size the native code gave,
  // and the maps of the command line's weights for that seed within the
  // tolerance of the native maps; the sums follow the new geometry.
  async function checkReplan(live) {
    var check = live.data.replanCheck;
    var answer = await setLayer(live, check.options);
    [['formula', answer.formula, check.formula], ['PyTorch line', answer.pytorch, check.pytorch],
      ['shown PyTorch line', document.querySelector('[data-pytorch] code').textContent, check.pytorch],
      ['output width', answer.outputWidth, check.outWidth], ['output height', answer.outputHeight, check.outHeight]
    ].forEach(function (compared) {
      if (compared[1] !== compared[2]) { throw new Error('re-planned ' + compared[0] + ' ' + compared[1] + ' is not the native ' + compared[2]); }
    });
    var worst = compareNative(live, check, 'the re-planned layer');
    for (var k = 0; k < live.layer.filters; k++) { checkSums(live, k); }
    return worst;
  }

  // The page's banks are the command line's: every bank for the shapes the
  // run embedded, value for value.
  function checkBanks(live) {
    live.data.bankCheck.forEach(function (check) {
      Object.keys(check.banks).forEach(function (name) {
        var native = decodeF32(check.banks[name]), made = ConvmapsBanks.weights(name, check.shape);
        var error = native.length === made.length ? mapError(made, native) : Infinity;
        if (!(error <= 1e-7)) { throw new Error('bank ' + name + ' differs from the native one by ' + error); }
      });
    });
  }

  // A bank loaded into the re-planned layer: the command line that makes
  // it, zero biases, and sums that follow; then filter 0 of another bank
  // loaded into filter 0 alone changes that map only.
  async function checkBankLayer(live) {
    var options = Object.assign({}, live.data.replanCheck.options, { init: 'gabor' });
    var answer = await setLayer(live, options);
    if (answer.command.indexOf('--init gabor') < 0 || answer.weights !== 'gabor') {
      throw new Error('a layer of the gabor bank gave the command ' + answer.command);
    }
    if (live.bias.some(function (b) { return b !== 0; })) { throw new Error('a bank\'s biases are not zero'); }
    checkSums(live, 0);
    var others = live.maps.slice(1).map(function (map) { return map.slice(); });
    await loadBankFilter(live, 0, 'identity');
    checkSums(live, 0);
    others.forEach(function (map, j) {
      if (mapError(live.maps[j + 1], map) > 0) { throw new Error('loading filter 0 changed map ' + (j + 1)); }
    });
  }

  async function selfTest(live) {
    if (!live.device) { throw new Error('no WebGPU adapter'); }
    await restoreRun(live);
    var worst = compareNative(live, live.data.check, 'the run\'s layer');
    await checkBias(live);
    for (var k = 0; k < live.layer.filters; k++) { checkSums(live, k); }
    await checkEditing(live);
    checkHover(live);
    checkFields(live);
    checkView(live);
    worst = Math.max(worst, await checkReplan(live));
    checkBanks(live);
    await checkBankLayer(live);
    await restoreRun(live);
    compareNative(live, live.data.check, 'the run\'s layer restored');
    return 'selftest ok ' + worst.toExponential(2);
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

  async function start(live) {
    buildSection(live);
    live.texts = saveTexts();
    watchFilterPictures(live);
    fillPlanForm(live);
    showPlan(live);
    live.device = await openDevice();
    if (!live.device) {
      live.viewForm.hidden = true;
      live.overlay.closest('.live-row').hidden = true;
      goStatic('Live editing needs a browser with WebGPU; the pictures below are the run\'s own. ' +
        'The options above still re-plan the layer\'s formula, output size and PyTorch line.');
      return;
    }
    live.pipeline = await buildPipeline(live.device);
    uploadInput(live);
    await computeAll(live);
    makeCanvases(live);
    drawAll(live);
    fillViewForm(live);
    document.body.dataset.live = 'webgpu';
    showStatus('Live: the maps below are computed in this browser by the project\'s own shader on ' +
      live.data.name + '\'s preview. Change the layer\'s options to re-plan it, click a map to edit its filter ' +
      'and see it over the photo, hover a map to read one value\'s sum.');
  }

  // What the address asks for after `#`: `layer=<JSON options>`,
  // `view=<JSON view>` and `map=<k>` (the map shown over the photo), joined
  // by `&`.
  function addressOptions(hash) {
    var options = {};
    hash.replace(/^#/, '').split('&').forEach(function (part) {
      var at = part.indexOf('=');
      if (at > 0) { options[part.slice(0, at)] = decodeURIComponent(part.slice(at + 1)); }
    });
    return options;
  }

  // Re-plans, sets the view and picks the map the address asks for; the
  // answer to the re-plan goes into <body data-replanned>.
  async function followAddress(live, hash) {
    var asked = addressOptions(hash);
    if (asked.layer !== undefined) {
      var answer = await window.convmaps.setLayer(JSON.parse(asked.layer));
      document.body.dataset.replanned = JSON.stringify(answer);
    }
    if (asked.view !== undefined) { setView(live, JSON.parse(asked.view)); }
    if (asked.map !== undefined && live.maps[Number(asked.map)]) {
      live.selected = Number(asked.map);
      drawSelected(live);
    }
  }

  // The run's layer as arithmetic.js reads a conv, for the explorer's
  // detail of one map: the preview's exact values and copies of the run's
  // weights (an edit there leaves the live maps as they are).
  function runConv(live) {
    var layer = live.run.layer, data = live.data;
    return {
      kernel: [layer.kernelHeight, layer.kernelWidth], strides: [layer.stride, layer.stride],
      pads: [layer.padTop, layer.padLeft, layer.padBottom, layer.padRight], dilations: [layer.dilation, layer.dilation],
      groups: layer.groups, filters: layer.filters, inputName: 'the photo', source: 'the photo and the weights',
      shape: [layer.channels, data.height, data.width], channelsPerGroup: layer.channels / layer.groups,
      then: layer.activation === 1 ? [{ op: 'relu' }] : [],
      weight: live.run.weight.slice(), bias: live.run.bias.slice(), input: live.input
    };
  }

  function main() {
    var live = readLive();
    live.ready = start(live).catch(function (error) {
      live.device = null;
      goStatic('Live editing is off: ' + error);
    });
    window.convmaps = Object.assign(window.convmaps || {}, {
      runConv: function () { return runConv(live); },
      setLayer: function (options) { return live.ready.then(function () { return setLayer(live, options); }); },
      setView: function (view) { return setView(live, view || {}); },
      selftest: function () {
        return live.ready.then(function () { return selfTest(live); }).catch(function (error) {
          return 'selftest fail ' + (error.message || error);
        });
      }
    });
    var work = null;
    if (location.hash === '#selftest') {
      work = window.convmaps.selftest().then(function (verdict) { document.title = verdict; });
    } else if (location.hash.length > 1) {
      work = live.ready.then(function () { return followAddress(live, location.hash); }).catch(function (error) {
        document.body.dataset.replanned = 'error: ' + (error.message || error);
      });
    }
    if (work) { keepAwake(work); }
  }

  main();
})();
