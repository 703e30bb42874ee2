//! A band's maps made into statistics and pixels on the GPU
//! (`shaders/map_pictures.wgsl`), so that what crosses back to the host is
//! a few numbers per map and 8-bit pixels, not the f32 maps.
//!
//! Both steps are recorded into a caller's encoder after the conv that
//! writes the maps, and each returns the mappable buffer to read.

use super::buffers::{
    buffer_init, check_buffers, check_workgroups, entry, record_dispatch, record_readback,
};
use super::{AutoPipeline, Gpu, auto_pipelines};
use crate::error::Result;
use crate::render::quantise::Quantise;

/// The shader's source, compiled into the binary.
pub const SHADER_SOURCE: &str = include_str!("../../shaders/map_pictures.wgsl");

/// The shader's `PictureParams` uniform, field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct PictureParams {
    maps: u32,
    plane_len: u32,
    row_groups: u32,
    words_per_map: u32,
    palette: u32,
    nan_index: u32,
    table_last: u32,
    _pad: u32,
}

/// A mappable buffer to read after the submission, and its length in
/// 32-bit words as `[1, 1, words]` (the shape [`super::InFlight`] reads).
pub type Readback = (wgpu::Buffer, [u32; 3]);

/// The compiled entry points of `map_pictures.wgsl`, made once per GPU.
pub struct MapPictures {
    stats: AutoPipeline,
    quantise: AutoPipeline,
}

impl MapPictures {
    /// Compiles the shader's entry points on `gpu`.
    pub fn new(gpu: &Gpu) -> Result<Self> {
        let [stats, quantise] = auto_pipelines(
            gpu,
            "map_pictures.wgsl",
            SHADER_SOURCE,
            ["map_stats", "quantise"],
        )?;
        Ok(MapPictures { stats, quantise })
    }

    /// Records the statistics of the maps `[n, rows, OW]` at the start of
    /// `maps`: per map, one [`Partial`] per chunk of
    /// [`CHUNK`] values, map after map. Returns the readback.
    pub fn record_stats(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        (maps, [count, rows, width]): (&wgpu::Buffer, [u32; 3]),
    ) -> Result<Readback> {
        let plane_len = rows as u64 * width as u64;
        let chunks = plane_len.div_ceil(CHUNK as u64);
        let words = count as u64 * chunks * 4;
        let params = PictureParams {
            maps: count,
            plane_len: plane_len as u32,
            ..Default::default()
        };
        self.dispatch(
            gpu,
            encoder,
            &self.stats,
            (maps, words),
            params,
            chunks,
            &[],
        )
    }

    /// Records the pixels of the maps `[n, rows, OW]` at the start of
    /// `maps`, coloured as `quantise` says (n = its ranges): laid out as
    /// [`crate::render::quantise::BandPixels`], `quantise.layout` bytes per
    /// map. Returns the readback.
    pub fn record_quantise(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        (maps, [count, rows, width]): (&wgpu::Buffer, [u32; 3]),
        quantise: &Quantise,
    ) -> Result<Readback> {
        let plane_len = rows as u64 * width as u64;
        let (_, map_stride) = quantise.layout(plane_len as usize);
        let words_per_map = (map_stride / 4) as u64;
        let params = PictureParams {
            maps: count,
            plane_len: plane_len as u32,
            words_per_map: words_per_map as u32,
            palette: (quantise.bytes_per_pixel() == 3) as u32,
            nan_index: quantise.nan_index(),
            table_last: quantise.table_last(),
            ..Default::default()
        };
        let ranges = buffer_init(
            gpu,
            "map ranges (lo, scale, flat, 0)",
            bytemuck::cast_slice(&quantise.map_params()),
            wgpu::BufferUsages::STORAGE,
        );
        let palette = buffer_init(
            gpu,
            "colour table",
            bytemuck::cast_slice(&quantise.palette()),
            wgpu::BufferUsages::STORAGE,
        );
        let groups = plane_len.div_ceil(4).div_ceil(WORKGROUP as u64);
        let words = count as u64 * words_per_map;
        let pipeline = &self.quantise;
        let extra = [entry(3, &ranges), entry(4, &palette)];
        self.dispatch(
            gpu,
            encoder,
            pipeline,
            (maps, words),
            params,
            groups,
            &extra,
        )
    }

    /// Records one dispatch of `pipeline` over `groups` workgroups per map
    /// (in rows of at most the device's limit) and every map, writing
    /// `words` 32-bit words into a new result buffer (bindings 0–2, and
    /// `extra` after them), and the result's copy into a mappable buffer.
    #[allow(clippy::too_many_arguments)]
    fn dispatch(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        (pipeline, layout): &AutoPipeline,
        (maps, words): (&wgpu::Buffer, u64),
        mut params: PictureParams,
        groups: u64,
        extra: &[wgpu::BindGroupEntry<'_>],
    ) -> Result<Readback> {
        let bytes = words * 4;
        check_buffers(&[("map pictures", bytes)], gpu.max_storage_binding())?;
        let words = u32::try_from(words).map_err(|_| {
            crate::error::Error::GpuLimit(format!(
                "a band's pictures of {words} words are more than a shader's 32-bit index reaches"
            ))
        })?;
        let result = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("map pictures"),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let max = gpu.limits().max_compute_workgroups_per_dimension.max(1) as u64;
        let row_groups = groups.clamp(1, max);
        let rows = groups.div_ceil(row_groups).max(1);
        let rows = u32::try_from(rows).unwrap_or(u32::MAX);
        check_workgroups(gpu, &[("map pictures' rows", rows), ("maps", params.maps)])?;
        params.row_groups = row_groups as u32;
        if params.maps > 0 && groups > 0 {
            let params_buffer = buffer_init(
                gpu,
                "picture params",
                bytemuck::bytes_of(&params),
                wgpu::BufferUsages::UNIFORM,
            );
            let mut entries = vec![entry(0, maps), entry(1, &result), entry(2, &params_buffer)];
            entries.extend(extra.iter().cloned());
            record_dispatch(
                gpu,
                encoder,
                (pipeline, layout),
                ("map pictures", &entries),
                [row_groups as u32, rows, params.maps],
            );
        }
        Ok(record_readback(gpu, encoder, &result, [1, 1, words]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::reflect::{rust_struct, wgsl_struct};

    #[test]
    fn picture_params_matches_the_shaders_struct() {
        let host = rust_struct!(PictureParams {
            maps,
            plane_len,
            row_groups,
            words_per_map,
            palette,
            nan_index,
            table_last,
            _pad,
        });
        assert_eq!(host, wgsl_struct(SHADER_SOURCE, "PictureParams"));
    }
}

/// Invocations of a `map_stats` workgroup (`shaders/map_pictures.wgsl`); its
/// CPU twin is `stats::gpu_partials`.
pub const WORKGROUP: usize = 256;
/// Values each invocation reads.
pub const ITEMS: usize = 16;
/// Values of a map per workgroup: one [`Partial`] each.
pub const CHUNK: usize = WORKGROUP * ITEMS;

/// One chunk's statistics as the shader's `map_stats` reduces them, in
/// f32, as it writes them (the fourth word unused).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Partial {
    /// Smallest value of the chunk.
    pub min: f32,
    /// Largest value.
    pub max: f32,
    /// Sum of its values, in f32.
    pub sum: f32,
    _unused: f32,
}

impl Partial {
    /// A chunk's smallest and largest value and its f32 sum.
    pub fn new(min: f32, max: f32, sum: f32) -> Self {
        Partial {
            min,
            max,
            sum,
            _unused: 0.0,
        }
    }
}
