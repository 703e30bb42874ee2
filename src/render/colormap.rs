//! Colour maps for feature maps: which colours stand for which values, and
//! which range of values a picture spans.
//!
//! The colour tables come from the `colorous` crate; the gray map is the
//! same linear ramp as [`super::to_gray8`].

use std::sync::OnceLock;

/// Entries in each colour map's lookup table. Odd, so that t = 0.5 (zero in
/// a symmetric range) falls exactly on an entry.
pub const TABLE_SIZE: usize = 1025;

/// A colour map: a function from t in [0, 1] to an RGB colour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Colormap {
    /// Black (0) to white (1), linear: the plain grayscale pictures.
    #[default]
    Gray,
    /// Dark purple through blue and green to yellow; perceptually uniform.
    Viridis,
    /// Black through purple and orange to pale yellow.
    Magma,
    /// Black through purple and red to yellow.
    Inferno,
    /// Blue through purple and orange to yellow.
    Plasma,
    /// Dark blue to yellow, readable with colour-vision deficiencies.
    Cividis,
    /// A rainbow, dark blue through green to dark red.
    Turbo,
    /// Diverging: blue for negative, white at zero, red for positive.
    Rdbu,
    /// Diverging: orange for negative, white at zero, purple for positive.
    Puor,
    /// Diverging: blue-green for negative, white at zero, brown for positive.
    Brbg,
}

impl Colormap {
    /// Every colour map, in the order help texts list them.
    pub const ALL: [Colormap; 10] = [
        Colormap::Gray,
        Colormap::Viridis,
        Colormap::Magma,
        Colormap::Inferno,
        Colormap::Plasma,
        Colormap::Cividis,
        Colormap::Turbo,
        Colormap::Rdbu,
        Colormap::Puor,
        Colormap::Brbg,
    ];

    /// The map's name on the command line: `gray`, `viridis`, `rdbu`, …
    pub fn name(self) -> &'static str {
        match self {
            Colormap::Gray => "gray",
            Colormap::Viridis => "viridis",
            Colormap::Magma => "magma",
            Colormap::Inferno => "inferno",
            Colormap::Plasma => "plasma",
            Colormap::Cividis => "cividis",
            Colormap::Turbo => "turbo",
            Colormap::Rdbu => "rdbu",
            Colormap::Puor => "puor",
            Colormap::Brbg => "brbg",
        }
    }

    /// The map called `name` (case-insensitive; `grey` is `gray`).
    pub fn from_name(name: &str) -> Option<Colormap> {
        let name = name.trim().to_ascii_lowercase();
        if name == "grey" {
            return Some(Colormap::Gray);
        }
        Colormap::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether the map is diverging: centred on zero, with one hue for
    /// positive values and another for negative ones. Its value range
    /// should be symmetric (see [`Normalize::range`]).
    pub fn is_diverging(self) -> bool {
        matches!(self, Colormap::Rdbu | Colormap::Puor | Colormap::Brbg)
    }

    /// The colour at `t` in [0, 1] (clamped). NaN gives the map's middle
    /// (zero) for a diverging map and its low end otherwise.
    ///
    /// Diverging maps run from the second colour of their name at t = 0
    /// (negative values) to the first at t = 1 (positive values): `rdbu`
    /// is blue at 0, near-white at 0.5 and red at 1.
    pub fn colour(self, t: f32) -> [u8; 3] {
        let t = self.clean(t);
        let sample = |gradient: colorous::Gradient, t: f32| {
            let c = gradient.eval_continuous(t as f64);
            [c.r, c.g, c.b]
        };
        match self {
            Colormap::Gray => {
                let v = (t * 255.0).round() as u8;
                [v, v, v]
            }
            Colormap::Viridis => sample(colorous::VIRIDIS, t),
            Colormap::Magma => sample(colorous::MAGMA, t),
            Colormap::Inferno => sample(colorous::INFERNO, t),
            Colormap::Plasma => sample(colorous::PLASMA, t),
            Colormap::Cividis => sample(colorous::CIVIDIS, t),
            Colormap::Turbo => sample(colorous::TURBO, t),
            // The diverging tables start with the first colour of their
            // name (red for RdBu); reversed, so positive gets that colour.
            Colormap::Rdbu => sample(colorous::RED_BLUE, 1.0 - t),
            Colormap::Puor => sample(colorous::PURPLE_ORANGE, 1.0 - t),
            Colormap::Brbg => sample(colorous::BROWN_GREEN, 1.0 - t),
        }
    }

    /// `t` clamped to [0, 1], with NaN replaced by the map's neutral point.
    fn clean(self, t: f32) -> f32 {
        if t.is_nan() {
            if self.is_diverging() { 0.5 } else { 0.0 }
        } else {
            t.clamp(0.0, 1.0)
        }
    }

    /// The map sampled at [`TABLE_SIZE`] evenly spaced points, made once
    /// per map and kept for the life of the program.
    pub fn table(self) -> &'static [[u8; 3]] {
        static TABLES: [OnceLock<Vec<[u8; 3]>>; Colormap::ALL.len()] =
            [const { OnceLock::new() }; Colormap::ALL.len()];
        let index = Colormap::ALL
            .iter()
            .position(|&c| c == self)
            .unwrap_or_default();
        TABLES[index].get_or_init(|| {
            (0..TABLE_SIZE)
                .map(|i| self.colour(i as f32 / (TABLE_SIZE - 1) as f32))
                .collect()
        })
    }

    /// The colour at `t`, from the map's lookup table: within one table
    /// step of [`Colormap::colour`], and exact at t = 0, 0.5 and 1.
    pub fn colour_fast(self, t: f32) -> [u8; 3] {
        let t = self.clean(t);
        self.table()[(t * (TABLE_SIZE - 1) as f32).round() as usize]
    }
}

impl std::fmt::Display for Colormap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Colormap {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Colormap::from_name(s).ok_or_else(|| {
            let names: Vec<&str> = Colormap::ALL.iter().map(|c| c.name()).collect();
            format!(
                "unknown colour map '{s}', expected one of: {}",
                names.join(", ")
            )
        })
    }
}

/// Which range of values a map's colours span.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Normalize {
    /// Each map from its own minimum to its own maximum.
    #[default]
    PerMap,
    /// Every map over the minimum and maximum of all maps together, so
    /// that colours compare across maps.
    Global,
    /// Every map over the same fixed range.
    Fixed {
        /// The value drawn at t = 0.
        lo: f32,
        /// The value drawn at t = 1.
        hi: f32,
    },
}

impl Normalize {
    /// Reads `per-map`, `global` or `LO,HI` (two finite numbers, LO < HI,
    /// e.g. `-1,1` or `0,2.5`).
    pub fn parse(text: &str) -> Result<Normalize, String> {
        let trimmed = text.trim();
        match trimmed.to_ascii_lowercase().as_str() {
            "per-map" => return Ok(Normalize::PerMap),
            "global" => return Ok(Normalize::Global),
            _ => {}
        }
        let Some((lo, hi)) = trimmed.split_once(',') else {
            return Err(format!(
                "normalisation '{text}' is not 'per-map', 'global' or a range LO,HI such as -1,1"
            ));
        };
        let number = |part: &str| -> Result<f32, String> {
            let value: f32 = part.trim().parse().map_err(|_| {
                format!(
                    "normalisation range '{text}': '{}' is not a number",
                    part.trim()
                )
            })?;
            if value.is_finite() {
                Ok(value)
            } else {
                Err(format!(
                    "normalisation range '{text}': '{}' is not finite",
                    part.trim()
                ))
            }
        };
        let (lo, hi) = (number(lo)?, number(hi)?);
        if lo >= hi {
            return Err(format!(
                "normalisation range '{text}': LO ({lo}) must be smaller than HI ({hi})"
            ));
        }
        Ok(Normalize::Fixed { lo, hi })
    }

    /// The value range `(lo, hi)` to draw one map over, given that map's
    /// own `(min, max)` and the `(min, max)` over all maps. For a
    /// diverging colour map the range is made symmetric around zero,
    /// `(−m, m)` with m = max(|lo|, |hi|), so that zero is the middle
    /// colour. A zero-width range stays zero-width (a flat picture).
    pub fn range(self, map: (f32, f32), all: (f32, f32), diverging: bool) -> (f32, f32) {
        let (lo, hi) = match self {
            Normalize::PerMap => map,
            Normalize::Global => all,
            Normalize::Fixed { lo, hi } => (lo, hi),
        };
        if diverging {
            let m = lo.abs().max(hi.abs());
            (-m, m)
        } else {
            (lo, hi)
        }
    }
}

impl std::fmt::Display for Normalize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Normalize::PerMap => f.write_str("per-map"),
            Normalize::Global => f.write_str("global"),
            Normalize::Fixed { lo, hi } => write!(f, "{lo},{hi}"),
        }
    }
}

impl std::str::FromStr for Normalize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Normalize::parse(s)
    }
}

/// Colours `map` with `cmap` over `lo..=hi`: interleaved RGB, three bytes
/// per value, with t = (v − lo)/(hi − lo). A zero-width (or inverted)
/// range gives t = 0.5 everywhere, mid-grey for the gray map, as in
/// [`super::to_gray8`]; the gray map gives exactly `to_gray8`'s values.
pub fn to_rgb8(map: &[f32], lo: f32, hi: f32, cmap: Colormap) -> Vec<u8> {
    let mut out = Vec::with_capacity(map.len() * 3);
    extend_rgb8(&mut out, map, lo, hi, cmap);
    out
}

/// [`to_rgb8`], appending to `out` (so a caller can reuse one buffer for
/// band after band).
pub fn extend_rgb8(out: &mut Vec<u8>, map: &[f32], lo: f32, hi: f32, cmap: Colormap) {
    if cmap == Colormap::Gray {
        out.extend(
            super::to_gray8(map, lo, hi)
                .into_iter()
                .flat_map(|g| [g; 3]),
        );
        return;
    }
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        let c = cmap.colour_fast(0.5);
        for _ in map {
            out.extend_from_slice(&c);
        }
        return;
    }
    let scale = 1.0 / (hi - lo);
    for &v in map {
        out.extend_from_slice(&cmap.colour_fast((v - lo) * scale));
    }
}
