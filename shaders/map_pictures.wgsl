// map_pictures.wgsl: what a band of feature maps becomes on the GPU, so that
// only a few numbers and 8-bit pixels cross back to the host instead of the
// f32 maps.
//
// * `map_stats`: each map's smallest value, largest value and sum, reduced
//   per chunk of CHUNK values (one workgroup each); the host combines the
//   chunks (`stats::MapStats::from_partials`).
// * `quantise`: each value normalised over its map's range and turned into
//   an 8-bit grey level or an RGB colour from the colour map's table: the
//   bytes of the PNG rows.
//
// The maps are a flat row-major f32 array [n, rows, OW] (the output of a
// conv), one plane of `plane_len` = rows·OW values per map. The CPU twins:
// `stats::gpu_partials` (the same chunks, the same order of additions) and
// `render::quantise::Quantise::pixels_cpu` (today's CPU colouring,
// `render::extend_gray8` and `colormap::extend_rgb8`).

struct PictureParams {
    maps: u32,          // n: maps in the band
    plane_len: u32,     // values per map: rows·OW
    row_groups: u32,    // workgroups per row of the dispatch grid (x)
    words_per_map: u32, // quantise: u32 words of pixels per map, padded
    palette: u32,       // quantise: 0 grey levels (1 byte a pixel), 1 RGB from `palette` (3 bytes)
    nan_index: u32,     // quantise: the table entry a NaN gets (the map's neutral colour)
    table_last: u32,    // quantise: the table's last index (entries − 1)
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> maps: array<f32>;
@group(0) @binding(1) var<storage, read_write> result: array<u32>;
@group(0) @binding(2) var<uniform> params: PictureParams;
// Per map: (lo, scale, flat, unused): t = (v − lo)·scale; a flat map
// (flat = 1: its range has no width) is drawn in its neutral colour.
@group(0) @binding(3) var<storage, read> ranges: array<vec4<f32>>;
// The colour map's table, one 0x00BBGGRR word per entry.
@group(0) @binding(4) var<storage, read> palette: array<u32>;

const WORKGROUP: u32 = 256u;
// Values each invocation of `map_stats` reads, WORKGROUP apart.
const ITEMS: u32 = 16u;
// Values per chunk: one workgroup's share of a map.
const CHUNK: u32 = 4096u; // WORKGROUP · ITEMS

var<workgroup> low: array<f32, WORKGROUP>;
var<workgroup> high: array<f32, WORKGROUP>;
var<workgroup> total: array<f32, WORKGROUP>;

// The workgroup's place along its map: the grid is 2-D (row_groups × rows of
// workgroups) so that a map of more than 65,535 workgroups fits one
// dispatch; z is the map.
fn group_index(group: vec3<u32>) -> u32 {
    return group.y * params.row_groups + group.x;
}

// Smallest, largest and sum of chunk `group.x, group.y` of map `group.z`:
// invocation i reads values i, i + 256, … i + 15·256 of the chunk (those
// inside the map), then the workgroup halves its 256 partial results 8
// times. result[4·(map·chunks + chunk) + 0, 1, 2] = min, max, sum as bits;
// chunks = ceil(plane_len / CHUNK).
@compute @workgroup_size(256, 1, 1)
fn map_stats(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let chunk = group_index(group);
    let chunks = (params.plane_len + CHUNK - 1u) / CHUNK;
    let map = group.z;
    let start = chunk * CHUNK;
    // Every lane starts from the chunk's first value (no infinity, which a
    // shader compiler may assume away): it changes neither the min nor the
    // max, and a lane with nothing to read adds nothing to the sum.
    let base = map * params.plane_len;
    var lo = 0.0;
    if (chunk < chunks) {
        lo = maps[base + start];
    }
    var hi = lo;
    var sum = 0.0;
    if (chunk < chunks) {
        for (var item = 0u; item < ITEMS; item++) {
            let i = start + item * WORKGROUP + lane;
            if (i < params.plane_len) {
                let v = maps[base + i];
                lo = min(lo, v);
                hi = max(hi, v);
                sum = sum + v;
            }
        }
    }
    low[lane] = lo;
    high[lane] = hi;
    total[lane] = sum;
    for (var half = WORKGROUP / 2u; half > 0u; half = half / 2u) {
        workgroupBarrier();
        if (lane < half) {
            low[lane] = min(low[lane], low[lane + half]);
            high[lane] = max(high[lane], high[lane + half]);
            total[lane] = total[lane] + total[lane + half];
        }
    }
    if (lane == 0u && chunk < chunks) {
        let at = 4u * (map * chunks + chunk);
        result[at] = bitcast<u32>(low[0]);
        result[at + 1u] = bitcast<u32>(high[0]);
        result[at + 2u] = bitcast<u32>(total[0]);
        result[at + 3u] = 0u;
    }
}

// Round to nearest, halves away from zero, for t ≥ 0 (as Rust's `round`;
// WGSL's own `round` sends halves to even). `t` is compared with
// `whole + 0.5` rather than `t − whole` with 0.5, so that no compiler can
// fuse a product that made `t` into the subtraction: both are exact in f32.
fn round_half_up(t: f32) -> u32 {
    let whole = floor(t);
    return u32(select(whole, whole + 1.0, t >= whole + 0.5));
}

// The grey level of value v of a map drawn over `range`, as
// `render::extend_gray8`: round((v − lo)·scale) clamped to 0–255, with
// scale = 255/(hi − lo); a flat map is mid-grey (128).
fn grey(v: f32, range: vec4<f32>) -> u32 {
    if (range.z != 0.0) {
        return 128u;
    }
    // Adding one half and truncating, as the CPU does.
    return u32(clamp((v - range.x) * range.y, 0.0, 255.0) + 0.5);
}

// The colour-map table entry of value v, as `Colormap::colour_fast`:
// t = (v − lo)·scale with scale = 1/(hi − lo), clamped to [0, 1] (NaN: the
// map's neutral entry), entry round(t·last); a flat map is t = 0.5.
fn entry_of(v: f32, range: vec4<f32>) -> u32 {
    let last = f32(params.table_last);
    if (range.z != 0.0) {
        return round_half_up(0.5 * last);
    }
    let t = (v - range.x) * range.y;
    if (t != t) {
        return params.nan_index;
    }
    return round_half_up(clamp(t, 0.0, 1.0) * last);
}

// The pixel bytes of value `first + p` of map `map`: a grey level, or a
// colour as 0x00BBGGRR; 0 past the map's end.
fn pixel(map: u32, first: u32, p: u32, range: vec4<f32>) -> u32 {
    if (first + p >= params.plane_len) {
        return 0u;
    }
    let v = maps[map * params.plane_len + first + p];
    if (params.palette == 0u) {
        return grey(v, range);
    }
    return palette[entry_of(v, range)];
}

// The 8-bit pixels of 4 consecutive values of one map per invocation:
// grey, one word of 4 levels (lowest byte first); RGB, three words holding
// 4 pixels' R, G, B bytes in order. Map k's pixels start at word
// k·words_per_map; values past the map's end are drawn as 0.
@compute @workgroup_size(256, 1, 1)
fn quantise(@builtin(global_invocation_id) id: vec3<u32>, @builtin(workgroup_id) group: vec3<u32>,
            @builtin(local_invocation_index) lane: u32) {
    let quad = group_index(group) * WORKGROUP + lane;
    let first = quad * 4u;
    if (first >= params.plane_len) {
        return;
    }
    let map = id.z;
    let range = ranges[map];
    let p0 = pixel(map, first, 0u, range);
    let p1 = pixel(map, first, 1u, range);
    let p2 = pixel(map, first, 2u, range);
    let p3 = pixel(map, first, 3u, range);
    let at = map * params.words_per_map;
    if (params.palette == 0u) {
        result[at + quad] = p0 | (p1 << 8u) | (p2 << 16u) | (p3 << 24u);
        return;
    }
    // R0 G0 B0 R1 | G1 B1 R2 G2 | B2 R3 G3 B3, lowest byte first.
    let words = at + 3u * quad;
    result[words] = p0 | ((p1 & 0xffu) << 24u);
    result[words + 1u] = ((p1 >> 8u) & 0xffffu) | ((p2 & 0xffffu) << 16u);
    result[words + 2u] = ((p2 >> 16u) & 0xffu) | (p3 << 8u);
}
