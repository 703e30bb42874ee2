// random.js: the command line's default initialisation, bit for bit, so
// that a layer re-planned in the page is the layer `convmaps --seed S`
// would make.
//
// ConvmapsRandom.kaimingUniform(shape, seed) fills K·C/G·FH·FW weights and
// then K biases, each (2u − 1)/√(C/G·FH·FW) with u = (next >>> 8) / 2²⁴,
// where `next` is the next 32-bit word of ChaCha8 keyed by seed_from_u64:
// the seed's 32 bytes are eight outputs of PCG32 from `seed`. This is
// weights::kaiming_uniform in the native code.
var ConvmapsRandom = (function () {
  'use strict';

  var MASK64 = (1n << 64n) - 1n;
  var PCG_MULTIPLIER = 6364136223846793005n;
  var PCG_INCREMENT = 11634580027462260723n;
  // "expand 32-byte k", ChaCha's four constant words.
  var CONSTANTS = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574];
  var DOUBLE_ROUNDS = 4; // ChaCha8

  function rotateRight32(x, r) { return ((x >>> r) | (x << ((32 - r) & 31))) >>> 0; }
  function rotateLeft32(x, r) { return ((x << r) | (x >>> (32 - r))) >>> 0; }

  // The eight key words seed_from_u64(seed) makes: PCG32's outputs.
  function keyFromSeed(seed) {
    var state = BigInt(seed) & MASK64;
    var key = [];
    for (var i = 0; i < 8; i++) {
      state = (state * PCG_MULTIPLIER + PCG_INCREMENT) & MASK64;
      var xorshifted = Number((((state >> 18n) ^ state) >> 27n) & 0xffffffffn);
      key.push(rotateRight32(xorshifted, Number(state >> 59n)));
    }
    return key;
  }

  function quarterRound(s, a, b, c, d) {
    s[a] = (s[a] + s[b]) >>> 0; s[d] = rotateLeft32(s[d] ^ s[a], 16);
    s[c] = (s[c] + s[d]) >>> 0; s[b] = rotateLeft32(s[b] ^ s[c], 12);
    s[a] = (s[a] + s[b]) >>> 0; s[d] = rotateLeft32(s[d] ^ s[a], 8);
    s[c] = (s[c] + s[d]) >>> 0; s[b] = rotateLeft32(s[b] ^ s[c], 7);
  }

  // Block `counter` of the key's stream 0: sixteen 32-bit words.
  function block(key, counter) {
    var input = CONSTANTS.concat(key, [counter >>> 0, Math.floor(counter / 4294967296), 0, 0]);
    var s = input.slice();
    for (var i = 0; i < DOUBLE_ROUNDS; i++) {
      quarterRound(s, 0, 4, 8, 12); quarterRound(s, 1, 5, 9, 13);
      quarterRound(s, 2, 6, 10, 14); quarterRound(s, 3, 7, 11, 15);
      quarterRound(s, 0, 5, 10, 15); quarterRound(s, 1, 6, 11, 12);
      quarterRound(s, 2, 7, 8, 13); quarterRound(s, 3, 4, 9, 14);
    }
    return s.map(function (word, j) { return (word + input[j]) >>> 0; });
  }

  // A function giving the stream's 32-bit words one after another.
  function chacha8(seed) {
    var key = keyFromSeed(seed), counter = 0, words = [], next = 16;
    return function () {
      if (next === 16) { words = block(key, counter++); next = 0; }
      return words[next++];
    };
  }

  // shape: {filters, channelsPerGroup, kernelHeight, kernelWidth, hasBias}.
  // Returns {weight: Float32Array [K, C/G, FH, FW], bias: Float32Array [K]
  // (empty without bias)}.
  function kaimingUniform(shape, seed) {
    var fanIn = shape.channelsPerGroup * shape.kernelHeight * shape.kernelWidth;
    var bound = 1 / Math.sqrt(fanIn);
    var next = chacha8(seed);
    function draw() { return (2 * ((next() >>> 8) / 16777216) - 1) * bound; }
    var weight = new Float32Array(shape.filters * fanIn);
    for (var i = 0; i < weight.length; i++) { weight[i] = draw(); }
    var bias = new Float32Array(shape.hasBias ? shape.filters : 0);
    for (var k = 0; k < bias.length; k++) { bias[k] = draw(); }
    return { weight: weight, bias: bias };
  }

  return { kaimingUniform: kaimingUniform, chacha8: chacha8 };
})();
