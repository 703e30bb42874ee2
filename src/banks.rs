//! Built-in filter banks: layers whose weights are designed rather than
//! random, so that the feature maps mean something to look at. They are the
//! kinds of filter the first layers of trained CNNs learn: oriented edges,
//! Gabor stripes, colour-opponent blobs and blurs, plus a pass-through.
//!
//! Every bank fills any shape: K ≥ 1 filters of C/G ≥ 1 channels and
//! FH×FW ≥ 1×1 taps, in the weight layout `[K, C/G, FH, FW]` (PyTorch OIHW).
//! Each designed filter is built in f64 and stored as f32. A design the
//! kernel is too small to express (an edge in a 1×1 kernel, say) falls back
//! to a colour mix: the channel weights of the matching opponent pair, spread
//! evenly over the window.

use std::f64::consts::PI;

use crate::error::Result;
use crate::layer::{Layer, LayerSpec};
use crate::weights::kaiming_uniform;

/// Which parameters a layer starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// PyTorch's default initialisation, from the seed.
    Random,
    /// Gabor filters: orientations × spatial frequencies × even/odd phase.
    Gabor,
    /// Oriented edge detectors on luminance.
    Edges,
    /// Colour-opponent centre–surround blobs.
    Opponent,
    /// Gaussian blurs of increasing width, and a box blur.
    Blur,
    /// Each filter passes one input channel through.
    Identity,
    /// Edges, Gabor, opponent and blur filters in turn.
    Mixed,
}

impl Init {
    /// Every initialisation, in the order the command line lists them.
    pub const ALL: [Init; 7] = [
        Init::Random,
        Init::Gabor,
        Init::Edges,
        Init::Opponent,
        Init::Blur,
        Init::Identity,
        Init::Mixed,
    ];

    /// The name the command line uses: `random`, `gabor`, ...
    pub fn name(self) -> &'static str {
        match self {
            Init::Random => "random",
            Init::Gabor => "gabor",
            Init::Edges => "edges",
            Init::Opponent => "opponent",
            Init::Blur => "blur",
            Init::Identity => "identity",
            Init::Mixed => "mixed",
        }
    }

    /// The initialisation called `name` (ASCII case ignored), if any.
    pub fn from_name(name: &str) -> Option<Init> {
        Init::ALL
            .into_iter()
            .find(|init| init.name().eq_ignore_ascii_case(name.trim()))
    }

    /// One line on what the bank holds.
    pub fn describe(self) -> &'static str {
        match self {
            Init::Random => {
                "PyTorch's default: every weight and bias uniform in ±1/√(C/G·FH·FW), from the seed"
            }
            Init::Gabor => {
                "Gabor filters over orientations × spatial frequencies × even/odd phase, \
                 zero-mean, unit L2 norm, on luminance"
            }
            Init::Edges => {
                "edge detectors: derivatives of a Gaussian along K evenly spaced orientations, \
                 on luminance, 1 across a unit step"
            }
            Init::Opponent => {
                "centre–surround blobs: red−green, green−red, blue−yellow, yellow−blue, \
                 light−dark, dark−light (on/off for one channel)"
            }
            Init::Blur => "Gaussian blurs of increasing sigma and a box blur, each summing to 1",
            Init::Identity => "filter k passes input channel k mod C/G through unchanged",
            Init::Mixed => "edge, Gabor, opponent and blur filters in turn",
        }
    }

    /// The designs whose filters the bank cycles through; `None` for Random.
    fn designs(self) -> Option<&'static [Design]> {
        match self {
            Init::Random => None,
            Init::Gabor => Some(&[Design::Gabor]),
            Init::Edges => Some(&[Design::Edges]),
            Init::Opponent => Some(&[Design::Opponent]),
            Init::Blur => Some(&[Design::Blur]),
            Init::Identity => Some(&[Design::Identity]),
            Init::Mixed => Some(&[Design::Edges, Design::Gabor, Design::Opponent, Design::Blur]),
        }
    }
}

/// Builds a layer of `spec` whose weights come from `init` (`seed` is used by
/// Random, and by Mixed for any random filters).
///
/// Random is [`kaiming_uniform`] exactly. The designed banks (Mixed holds no
/// random filters, so it ignores the seed) have zero biases when
/// `spec.bias` is true. Filter k of a bank cycling through D designs is
/// filter k / D of the design k mod D.
pub fn filter_bank(init: Init, spec: LayerSpec, seed: u64) -> Result<Layer> {
    let Some(designs) = init.designs() else {
        return kaiming_uniform(spec, seed);
    };
    spec.validate()?;
    let shape = Shape::of(&spec);
    let filters = spec.filters as usize;
    let cycle = designs.len();
    let mut weight = Vec::with_capacity(spec.weight_len());
    for k in 0..filters {
        let (design, index) = (designs[k % cycle], k / cycle);
        let count = (filters - k % cycle).div_ceil(cycle);
        let filter = design
            .filter(index, count, shape)
            .unwrap_or_else(|| colour_mix(index, shape));
        weight.extend(filter.into_iter().map(|w| w as f32));
    }
    Layer::new(spec, weight, vec![0.0; spec.bias_len()])
}

/// One family of designed filters.
#[derive(Clone, Copy, Debug)]
enum Design {
    Edges,
    Gabor,
    Opponent,
    Blur,
    Identity,
}

impl Design {
    /// Filter `index` of the design's `count`, `[C/G, FH, FW]`, or `None`
    /// when the kernel is too small to express it.
    fn filter(self, index: usize, count: usize, shape: Shape) -> Option<Vec<f64>> {
        match self {
            Design::Edges => edge(index, count, shape),
            Design::Gabor => gabor(index, count, shape),
            Design::Opponent => opponent(index, shape),
            Design::Blur => Some(blur(index, count, shape)),
            Design::Identity => Some(identity(index, shape)),
        }
    }
}

/// The shape of one filter: C/G channels of FH×FW taps.
#[derive(Clone, Copy, Debug)]
struct Shape {
    channels: usize,
    height: usize,
    width: usize,
}

impl Shape {
    fn of(spec: &LayerSpec) -> Shape {
        Shape {
            channels: spec.channels_per_group() as usize,
            height: spec.kernel_height as usize,
            width: spec.kernel_width as usize,
        }
    }

    /// Taps per channel: FH·FW.
    fn taps(self) -> usize {
        self.height * self.width
    }

    /// Each tap's offset `(dy, dx)` from the kernel's centre, `[FH, FW]`
    /// row-major; the centre of an even side lies between two taps.
    fn offsets(self) -> impl Iterator<Item = (f64, f64)> {
        let centre_y = (self.height as f64 - 1.0) / 2.0;
        let centre_x = (self.width as f64 - 1.0) / 2.0;
        (0..self.height).flat_map(move |y| {
            (0..self.width).map(move |x| (y as f64 - centre_y, x as f64 - centre_x))
        })
    }

    /// The unnormalised Gaussian envelope `[FH, FW]` with sigma
    /// `scale`·FH down and `scale`·FW across.
    fn envelope(self, scale: f64) -> Vec<f64> {
        let (sigma_y, sigma_x) = (scale * self.height as f64, scale * self.width as f64);
        self.offsets()
            .map(|(dy, dx)| (-0.5 * ((dy / sigma_y).powi(2) + (dx / sigma_x).powi(2))).exp())
            .collect()
    }

    /// A Gaussian `[FH, FW]` with sigma `scale`·F on each axis, summing to 1.
    fn gaussian(self, scale: f64) -> Vec<f64> {
        let mut spatial = self.envelope(scale);
        let total: f64 = spatial.iter().sum();
        spatial.iter_mut().for_each(|v| *v /= total);
        spatial
    }
}

/// The filter `[C, FH, FW]` whose channel c is `channel[c]`·`spatial`.
fn outer(channel: &[f64], spatial: &[f64]) -> Vec<f64> {
    channel
        .iter()
        .flat_map(|&c| spatial.iter().map(move |&s| c * s))
        .collect()
}

/// The unit vector `(cos θ, sin θ)` with θ = π·`index`/`count`, rounding
/// float noise to 0 so that an axis-aligned direction stays on its axis.
fn direction(index: usize, count: usize) -> (f64, f64) {
    let angle = PI * index as f64 / count as f64;
    let snap = |v: f64| if v.abs() < 1e-12 { 0.0 } else { v };
    (snap(angle.cos()), snap(angle.sin()))
}

/// Edge filter `index` of `count`, `[C/G, FH, FW]`: the derivative of a
/// Gaussian (sigma F/4 per axis) along θ = π·index/count, the same on every
/// channel. θ = 0 is d/dx (vertical edges, positive where the image
/// brightens to the right), θ = π/2 is d/dy (horizontal edges, brightening
/// downwards). Scaled so a unit grey step through the centre gives 1 (its
/// positive taps sum to 1/(C/G) per channel); zero-mean. `None` when the
/// kernel has no extent along θ.
fn edge(index: usize, count: usize, shape: Shape) -> Option<Vec<f64>> {
    let (cos, sin) = direction(index, count);
    let spatial: Vec<f64> = shape
        .offsets()
        .zip(shape.envelope(0.25))
        .map(|((dy, dx), g)| (dx * cos + dy * sin) * g)
        .collect();
    let step: f64 = spatial.iter().filter(|&&v| v > 0.0).sum();
    if step < 1e-9 {
        return None;
    }
    let luminance = vec![1.0 / (step * shape.channels as f64); shape.channels];
    Some(outer(&luminance, &spatial))
}

/// Gabor filter `index` of `count`, `[C/G, FH, FW]`: a Gaussian envelope
/// (sigma F/4 per axis) times a cosine wave, the same on every channel,
/// zero-mean, unit L2 norm. Index order: phase (even, odd) fastest, then
/// orientation (wave direction π·o/O, so o = 0 has vertical stripes), then
/// frequency (wavelength 0.8·F shrinking by 1.5, at least 2.5 pixels, as a
/// wave of 2 pixels vanishes on the taps of some phases). One frequency per
/// 16 filters (at most 3), and as many orientations as it takes to fill K.
/// `None` when nothing is left after removing the mean.
fn gabor(index: usize, count: usize, shape: Shape) -> Option<Vec<f64>> {
    let frequencies = count.div_ceil(16).clamp(1, 3);
    let orientations = count.div_ceil(2 * frequencies);
    let (odd, orientation) = (index % 2 == 1, (index / 2) % orientations);
    let frequency = index / (2 * orientations);
    let mean_size = (shape.height + shape.width) as f64 / 2.0;
    let wavelength = (0.8 * mean_size / 1.5f64.powi(frequency as i32)).max(2.5);
    let phase = if odd { -PI / 2.0 } else { 0.0 };
    let (cos, sin) = direction(orientation, orientations);
    let mut spatial: Vec<f64> = shape
        .offsets()
        .zip(shape.envelope(0.25))
        .map(|((dy, dx), g)| g * (2.0 * PI * (dx * cos + dy * sin) / wavelength + phase).cos())
        .collect();
    let mean = spatial.iter().sum::<f64>() / spatial.len() as f64;
    spatial.iter_mut().for_each(|v| *v -= mean);
    let norm = spatial.iter().map(|v| v * v).sum::<f64>().sqrt();
    if norm < 1e-6 {
        return None;
    }
    let luminance = vec![1.0 / (norm * (shape.channels as f64).sqrt()); shape.channels];
    Some(outer(&luminance, &spatial))
}

/// The opponent colour pairs (centre, surround) for C/G channels, each
/// colour `[C/G]` with weights summing to +1 or −1:
/// - 1 channel: on-centre, off-centre;
/// - 3 channels (RGB): red−green, green−red, blue−yellow, yellow−blue,
///   light−dark, dark−light;
/// - otherwise: channel i against i + 1 both ways for each neighbouring
///   pair, then light−dark, dark−light.
fn opponent_colours(channels: usize) -> Vec<(Vec<f64>, Vec<f64>)> {
    let unit = |c: usize| -> Vec<f64> { (0..channels).map(|i| f64::from(i == c)).collect() };
    let light = vec![1.0 / channels as f64; channels];
    let dark: Vec<f64> = light.iter().map(|v| -v).collect();
    let mut pairs = Vec::new();
    if channels == 3 {
        let yellow = vec![0.5, 0.5, 0.0];
        pairs.push((unit(0), unit(1)));
        pairs.push((unit(1), unit(0)));
        pairs.push((unit(2), yellow.clone()));
        pairs.push((yellow, unit(2)));
    } else {
        for c in 1..channels {
            pairs.push((unit(c - 1), unit(c)));
            pairs.push((unit(c), unit(c - 1)));
        }
    }
    pairs.push((light.clone(), light));
    pairs.push((dark.clone(), dark));
    pairs
}

/// Opponent filter `index`, `[C/G, FH, FW]`: centre colour × a Gaussian of
/// sigma F/8 minus surround colour × a Gaussian of sigma F/4, both summing
/// to 1, so a flat image gives 0. Once the colour list is used up it repeats
/// at 1.5× and 2.25× the size. `None` when centre and surround cancel (a
/// light−dark blob in a kernel whose taps are all as far from the centre).
fn opponent(index: usize, shape: Shape) -> Option<Vec<f64>> {
    let pairs = opponent_colours(shape.channels);
    let (centre_colour, surround_colour) = &pairs[index % pairs.len()];
    let size = 1.5f64.powi(((index / pairs.len()) % 3) as i32);
    let centre = outer(centre_colour, &shape.gaussian(size / 8.0));
    let surround = outer(surround_colour, &shape.gaussian(size / 4.0));
    let filter: Vec<f64> = centre.iter().zip(&surround).map(|(c, s)| c - s).collect();
    filter.iter().any(|v| v.abs() > 1e-9).then_some(filter)
}

/// Blur filter `index` of `count`, `[C/G, FH, FW]`: with K ≥ 2 the last is a
/// box blur and the others Gaussians of sigma F/8 up to F/2 per axis (F/4
/// when there is one); each sums to 1 per channel, averaged over channels,
/// so a flat grey image stays the same grey.
fn blur(index: usize, count: usize, shape: Shape) -> Vec<f64> {
    let gaussians = count.saturating_sub(1).max(1);
    let spatial = if count >= 2 && index == count - 1 {
        vec![1.0 / shape.taps() as f64; shape.taps()]
    } else if gaussians == 1 {
        shape.gaussian(0.25)
    } else {
        shape.gaussian(0.125 + 0.375 * index as f64 / (gaussians - 1) as f64)
    };
    outer(&vec![1.0 / shape.channels as f64; shape.channels], &spatial)
}

/// Identity filter `index`, `[C/G, FH, FW]`: weight 1 on channel
/// index mod C/G at the centre tap (the top-left of the central 2×2 for even
/// sizes, which `same` padding lines up with the output pixel), 0 elsewhere.
fn identity(index: usize, shape: Shape) -> Vec<f64> {
    let mut filter = vec![0.0; shape.channels * shape.taps()];
    let channel = index % shape.channels;
    let (y, x) = ((shape.height - 1) / 2, (shape.width - 1) / 2);
    filter[(channel * shape.height + y) * shape.width + x] = 1.0;
    filter
}

/// The fallback for a design the kernel cannot express, `[C/G, FH, FW]`:
/// opponent pair `index`'s colour (centre − surround, or the centre alone
/// for light and dark, which would cancel) spread evenly over the window.
/// In a 1×1 kernel this is a plain colour mix: R−G, G−R, B−Y, Y−B, L, −L.
fn colour_mix(index: usize, shape: Shape) -> Vec<f64> {
    let pairs = opponent_colours(shape.channels);
    let (centre, surround) = &pairs[index % pairs.len()];
    let mix: Vec<f64> = if centre == surround {
        centre.clone()
    } else {
        centre.iter().zip(surround).map(|(c, s)| c - s).collect()
    };
    outer(&mix, &vec![1.0 / shape.taps() as f64; shape.taps()])
}
