// detail.js: one map opened large on a stack's or a network's page
// (ConvmapsDetail.open): its picture, colour bar and statistics; for a conv
// whose copies the page embeds (arithmetic.js), its filter one input
// channel at a time, the value under the pointer as its arithmetic, and an
// editor of the filter: the bias, and the weights of one input channel at a
// time, each change recomputing the map in the page from the copies of the
// conv's input (Reset brings the run's values back). The recomputed map is
// drawn in the run's colour map over the run's range, so that a change
// shows as a change of colour.
var ConvmapsDetail = (function () {
  'use strict';

  function element(tag, text, className) {
    var node = document.createElement(tag);
    if (text) { node.textContent = text; }
    if (className) { node.className = className; }
    return node;
  }

  function labelled(text, input) {
    var label = element('label', text + ' ');
    label.appendChild(input);
    return label;
  }

  function numberBox(value, changed) {
    var input = element('input');
    input.type = 'number';
    input.step = 'any';
    input.value = String(Number(value.toPrecision(6)));
    input.addEventListener('input', function () {
      var number = parseFloat(input.value);
      if (isFinite(number)) { changed(number); }
    });
    return input;
  }

  // The editor of filter k of `conv` (decoded by ConvmapsArithmetic): its
  // element, and for scripts `values()` (the recomputed map), `bias()`,
  // `setBias(value)`, `setWeight(channel, y, x, value)` and `reset()`.
  // `shown` = {width, height, table, range}: the page's map and how the run
  // drew it.
  function editor(conv, k, shown) {
    if (!conv.bias) { conv.bias = new Float32Array(conv.filters); }
    var size = conv.kernel[0] * conv.kernel[1], length = conv.channelsPerGroup * size, start = k * length;
    var saved = { weight: conv.weight.slice(start, start + length), bias: conv.bias[k] };
    var state = { channel: 0, values: null };
    var box = element('div', '', 'filter-editor');
    var canvas = element('canvas');
    canvas.width = shown.width;
    canvas.height = shown.height;
    var weights = element('div');

    function recompute() {
      state.values = ConvmapsArithmetic.map(conv, k, shown.width, shown.height);
      ConvmapsView.paint(canvas, state.values, false, shown.range, shown.table);
      return state.values;
    }
    function setBias(value) { conv.bias[k] = value; return recompute(); }
    function setWeight(channel, y, x, value) {
      conv.weight[start + channel * size + y * conv.kernel[1] + x] = value;
      return recompute();
    }
    // The chosen channel's FH×FW weights as number boxes.
    function showWeights() {
      weights.textContent = '';
      var table = element('table', '', 'live-weights');
      for (var y = 0; y < conv.kernel[0]; y++) {
        var row = element('tr');
        for (var x = 0; x < conv.kernel[1]; x++) {
          var at = start + state.channel * size + y * conv.kernel[1] + x;
          row.appendChild(element('td')).appendChild(numberBox(conv.weight[at], setWeight.bind(null, state.channel, y, x)));
        }
        table.appendChild(row);
      }
      weights.appendChild(table);
    }
    function reset() {
      conv.weight.set(saved.weight, start);
      conv.bias[k] = saved.bias;
      biasBox.value = String(Number(saved.bias.toPrecision(6)));
      showWeights();
      return recompute();
    }

    var biasBox = numberBox(saved.bias, setBias);
    var channelBox = element('input');
    channelBox.type = 'number';
    channelBox.min = 0;
    channelBox.max = conv.channelsPerGroup - 1;
    channelBox.value = '0';
    channelBox.addEventListener('change', function () {
      var channel = Number(channelBox.value);
      if (Number.isInteger(channel) && channel >= 0 && channel < conv.channelsPerGroup) { state.channel = channel; showWeights(); }
    });
    var resetButton = element('button', 'Reset');
    resetButton.type = 'button';
    resetButton.addEventListener('click', reset);
    box.appendChild(labelled('bias', biasBox));
    box.appendChild(labelled('weights of input channel (of ' + conv.channelsPerGroup + ')', channelBox));
    box.appendChild(weights);
    box.appendChild(resetButton);
    var figure = element('figure', '', '');
    figure.appendChild(canvas);
    figure.appendChild(element('figcaption', 'recomputed in this page from the copies, in the run\'s colours'));
    box.appendChild(figure);
    showWeights();
    recompute();
    return {
      element: box, values: function () { return state.values; }, bias: function () { return conv.bias[k]; },
      setBias: setBias, setWeight: setWeight, reset: reset
    };
  }

  // The map's pixel under a pointer event over `picture`, or null.
  function pixelUnder(picture, event, width, height) {
    var box = picture.getBoundingClientRect();
    var x = Math.floor((event.clientX - box.left) * width / box.width);
    var y = Math.floor((event.clientY - box.top) * height / box.height);
    return x >= 0 && x < width && y >= 0 && y < height ? { x: x, y: y } : null;
  }

  // A slider that lays the map (its picture, stretched to the photo) over
  // the page's photo at the slider's opacity; null where the page frames
  // no photo. Closing the panel takes the map away.
  function overlayControl(file, panel) {
    var frame = document.getElementById('convmaps-field');
    var holder = frame && frame.parentNode;
    if (!holder) { return null; }
    var old = holder.querySelector('img.map-overlay');
    if (old) { old.remove(); }
    var picture = element('img', '', 'map-overlay');
    picture.src = file.split('/').map(encodeURIComponent).join('/');
    picture.alt = '';
    picture.style.opacity = '0';
    holder.insertBefore(picture, frame);
    var slider = element('input');
    slider.type = 'range';
    slider.min = 0;
    slider.max = 1;
    slider.step = 0.05;
    slider.value = '0';
    slider.addEventListener('input', function () { picture.style.opacity = slider.value; });
    panel.querySelector('button').addEventListener('click', function () { picture.remove(); });
    var line = element('p', '', 'overlay-control');
    line.appendChild(labelled('over the photo', slider));
    return line;
  }

  // Opens map k in `shown.panel`: shown = {panel, title, file, bar (a colour
  // bar element), stats (text), conv (decoded, or null), noArithmetic (why
  // not, or null), k, width, height, table, range, frame(x, y) (frames a
  // pixel's field; frame(null) hides it)}. Returns {showAt(x, y), edit()}:
  // a pixel's arithmetic, and the filter's editor opened.
  function open(shown) {
    var panel = shown.panel, conv = shown.conv, k = shown.k;
    panel.textContent = '';
    var close = element('button', 'close');
    close.addEventListener('click', function () { panel.hidden = true; });
    panel.appendChild(close);
    panel.appendChild(element('h3', shown.title));
    var picture = element('img');
    picture.src = shown.file.split('/').map(encodeURIComponent).join('/');
    picture.alt = shown.title;
    panel.appendChild(picture);
    panel.appendChild(shown.bar);
    panel.appendChild(element('p', shown.stats));
    var overlay = overlayControl(shown.file, panel);
    if (overlay) { panel.appendChild(overlay); }
    var sums = element('pre', '', 'map-sums');
    var edits = element('details', '', 'edit');
    if (conv) {
      panel.appendChild(element('p', 'its filter, one picture per input channel (blue below zero, red above):'));
      panel.appendChild(ConvmapsArithmetic.filterPictures(conv, k, 64, 8));
      sums.textContent = 'hover the map to see one value as its sums';
    } else if (shown.noArithmetic) {
      sums.textContent = 'No arithmetic on this page: ' + shown.noArithmetic + '.';
    }
    panel.appendChild(sums);
    var opened = null;
    function edit() {
      if (!opened) {
        opened = editor(conv, k, shown);
        edits.appendChild(opened.element);
      }
      edits.open = true;
      return opened;
    }
    if (conv) {
      edits.appendChild(element('summary', 'Edit this filter'));
      edits.addEventListener('toggle', function () { if (edits.open) { edit(); } });
      panel.appendChild(edits);
    }
    function showAt(x, y) {
      shown.frame(x, y);
      if (conv) { sums.textContent = ConvmapsArithmetic.describe(conv, k, x, y); }
    }
    picture.addEventListener('mousemove', function (event) {
      var at = pixelUnder(picture, event, shown.width, shown.height);
      if (at) { showAt(at.x, at.y); }
    });
    picture.addEventListener('mouseleave', function () { shown.frame(null); });
    panel.hidden = false;
    return { showAt: showAt, edit: conv ? edit : null };
  }

  // For the pages' checks: the editor's map before any change at three
  // values ({name, map: 0, x, y, value}), the most any value moved other
  // than by δ when the bias moved by δ = 0.5, the steps after the conv, and
  // the most any value differs after Reset.
  function check(edited, name, width) {
    var before = Array.from(edited.values()), delta = 0.5;
    var points = [0, before.length >> 1, before.length - 1].map(function (i) {
      return { name: name, map: 0, x: i % width, y: Math.floor(i / width), value: before[i] };
    });
    var moved = edited.setBias(edited.bias() + delta), off = 0, restored = 0;
    moved.forEach(function (value, i) { off = Math.max(off, Math.abs(value - before[i] - delta)); });
    edited.reset().forEach(function (value, i) { restored = Math.max(restored, Math.abs(value - before[i])); });
    return { points: points, offByDelta: off, restored: restored };
  }

  // The self-test of a stack's or a network's page, as a verdict: `selftest
  // ok <worst relative error>` or `selftest fail <reason>`. Each embedded
  // conv's arithmetic at the values the run embedded (`layers`: [{name,
  // conv (decoded), run: {values: [{map, x, y, value}], largest}}]) within
  // 1% of its map's largest |value| (the copies are 8-bit); the strips'
  // colours after setView (`strips.check()`); and a filter's editor
  // (`editCheck()`: the run's map, every value moving by δ with the bias,
  // Reset).
  function selftest(layers, strips, editCheck) {
    try {
      var worst = 0, checked = 0;
      layers.forEach(function (layer) {
        layer.run.values.forEach(function (point) {
          var value = ConvmapsArithmetic.evaluate(layer.conv, point.map, point.x, point.y).value;
          var error = Math.abs(value - point.value) / (layer.run.largest || 1);
          if (!(error <= 0.01)) {
            throw new Error(layer.name + ' map ' + point.map + ' at (' + point.x + ', ' + point.y + ') sums to ' + value +
              ', the run computed ' + point.value);
          }
          worst = Math.max(worst, error);
          checked++;
        });
      });
      if (!checked) { throw new Error('the page embeds no arithmetic to check'); }
      var view = strips.check();
      if (view && (view.wrong || !view.refused)) { throw new Error('setView drew ' + view.wrong + ' values in the wrong colour'); }
      var edited = editCheck();
      if (edited && !(edited.offByDelta < 1e-5 && edited.restored === 0)) {
        throw new Error('the filter editor moved a value by ' + edited.offByDelta + ' more than the bias, or Reset left ' + edited.restored);
      }
      return 'selftest ok ' + worst.toExponential(2);
    } catch (error) {
      return 'selftest fail ' + (error.message || error);
    }
  }

  return { open: open, editor: editor, check: check, selftest: selftest };
})();
