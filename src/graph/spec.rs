//! `--layers SPEC`: a stack written as comma-separated items, such as
//! `32x5,relu,maxpool2,64x3/s2/p1,relu`, or a model's conv names
//! (`conv1,relu,conv2`) with `--weights`.

use crate::error::{Error, Result};
use crate::layer::{Activation, Geometry, LayerSpec, PaddingMode};
use crate::pool::PoolSpec;

/// One item of a stack, as written.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// A conv layer.
    Conv(ConvItem),
    /// `relu`: `max(x, 0)` on every value.
    Relu,
    /// `maxpoolN` (N×N, stride N) or `maxpoolN/sS`.
    MaxPool(PoolSpec),
}

/// A conv item: its geometry on the command line, or a model's layer.
#[derive(Clone, Debug, PartialEq)]
pub enum ConvItem {
    /// `KxF` or `KxFHxFW`, with `/sS`, `/pP` or `/psame`, `/dD`, `/gG`.
    Cli(Geometry),
    /// A conv of the `--weights` model, by name; its geometry comes from
    /// the file where the format has it.
    Named(String),
}

/// An item with its text and position, for messages and the summary.
#[derive(Clone, Debug, PartialEq)]
pub struct SpecItem {
    /// The item as written, e.g. `64x3/s2`.
    pub text: String,
    /// What it is.
    pub item: Item,
}

impl SpecItem {
    /// `item 3 (64y3)`, for messages.
    pub fn describe(&self, index: usize) -> String {
        format!("--layers item {} `{}`", index + 1, self.text)
    }
}

/// Parses a `--layers` spec. With `named` (a `--weights` model is given),
/// an item that is not a CLI conv, `relu` or a pooling is a layer name of
/// the model; without, it is an error naming the item.
pub fn parse(spec: &str, named: bool) -> Result<Vec<SpecItem>> {
    let items: Vec<&str> = spec.split(',').map(str::trim).collect();
    if items.iter().all(|item| item.is_empty()) {
        return Err(Error::InvalidLayer(
            "--layers is empty; give a stack such as 32x5,relu,maxpool2,64x3".into(),
        ));
    }
    let parsed = items
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let item = parse_item(text, named).map_err(|message| {
                Error::InvalidLayer(format!("--layers item {} `{text}`: {message}", index + 1))
            })?;
            Ok(SpecItem {
                text: text.to_string(),
                item,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some((index, first)) = parsed
        .iter()
        .enumerate()
        .find(|(_, item)| !matches!(item.item, Item::Conv(_)))
        .filter(|&(index, _)| {
            !parsed[..index]
                .iter()
                .any(|item| matches!(item.item, Item::Conv(_)))
        })
    {
        return Err(Error::InvalidLayer(format!(
            "{}: a stack starts with a conv; `{}` needs a conv's maps before it",
            first.describe(index),
            first.text
        )));
    }
    Ok(parsed)
}

/// One item, or why it is not one.
fn parse_item(text: &str, named: bool) -> std::result::Result<Item, String> {
    if text.is_empty() {
        return Err("an empty item (two commas in a row?)".into());
    }
    if text.eq_ignore_ascii_case("relu") {
        return Ok(Item::Relu);
    }
    if let Some(rest) = text.strip_prefix("maxpool") {
        return parse_pool(rest).map(Item::MaxPool);
    }
    let looks_like_conv = text
        .split('/')
        .next()
        .is_some_and(|head| head.contains('x') && head.starts_with(|c: char| c.is_ascii_digit()));
    if looks_like_conv {
        return parse_conv(text).map(|conv| Item::Conv(ConvItem::Cli(conv)));
    }
    if named {
        return Ok(Item::Conv(ConvItem::Named(text.to_string())));
    }
    Err(
        "not an item: a conv is KxF or KxFHxFW (e.g. 32x5, 64x3/s2/p1), \
         the others are relu, maxpoolN and maxpoolN/sS; a layer name needs --weights MODEL"
            .into(),
    )
}

/// `N` or `N/sS` after `maxpool`.
fn parse_pool(rest: &str) -> std::result::Result<PoolSpec, String> {
    let mut parts = rest.split('/');
    let size = number(parts.next().unwrap_or(""), "the pooling window")?;
    let mut pool = PoolSpec::square(size);
    for (index, option) in parts.enumerate() {
        match option.strip_prefix('s') {
            Some(_) if index > 0 => return Err("/s is given twice".into()),
            Some(stride) => pool.stride = number(stride, "the pooling stride")?,
            None => {
                return Err(format!(
                    "`/{option}`: a pooling takes only /sS (its stride)"
                ));
            }
        }
    }
    Ok(pool)
}

/// `KxF` or `KxFHxFW`, then its options.
fn parse_conv(text: &str) -> std::result::Result<Geometry, String> {
    let mut parts = text.split('/');
    let head = parts.next().unwrap_or("");
    let sizes: Vec<&str> = head.split('x').collect();
    let (filters, kernel_size) = match sizes[..] {
        [filters, side] => (filters, (side, side)),
        [filters, height, width] => (filters, (height, width)),
        _ => return Err("a conv is KxF or KxFHxFW, e.g. 32x5 or 16x3x5".into()),
    };
    let mut conv = Geometry {
        filters: number(filters, "the filter count")?,
        kernel_size: (
            number(kernel_size.0, "the kernel size")?,
            number(kernel_size.1, "the kernel size")?,
        ),
        stride: 1,
        padding: PaddingMode::Valid,
        dilation: 1,
        groups: 1,
    };
    let mut given = Vec::new();
    for option in parts {
        let mut chars = option.chars();
        let key = chars.next();
        let value = chars.as_str();
        if let Some(key) = key.filter(|key| given.contains(key)) {
            return Err(format!("/{key} is given twice"));
        }
        given.extend(key);
        match key {
            Some('s') => conv.stride = number(value, "the stride")?,
            Some('d') => conv.dilation = number(value, "the dilation")?,
            Some('g') => conv.groups = number(value, "the groups")?,
            Some('p') if value == "same" => conv.padding = PaddingMode::Same,
            Some('p') => {
                let pixels: u32 = value.parse().map_err(|_| {
                    format!("`/p{value}`: the padding is a number of pixels or `same`")
                })?;
                conv.padding = PaddingMode::Pixels(pixels);
            }
            _ => {
                return Err(format!(
                    "`/{option}`: a conv's options are /sS (stride), /pP or /psame (padding), \
                     /dD (dilation) and /gG (groups)"
                ));
            }
        }
    }
    Ok(conv)
}

/// A conv as stack items write it: `32x5`, `16x3x5/s2/p1/d2/g3`, then
/// `relu` when it has the activation. A padding that differs between sides
/// (PyTorch's `same` with an even kernel) is written `/psame`.
pub fn conv_items(spec: &LayerSpec) -> Vec<String> {
    let mut text = if spec.kernel_height == spec.kernel_width {
        format!("{}x{}", spec.filters, spec.kernel_height)
    } else {
        format!(
            "{}x{}x{}",
            spec.filters, spec.kernel_height, spec.kernel_width
        )
    };
    let padding = spec.padding;
    let uniform = [padding.bottom, padding.left, padding.right]
        .iter()
        .all(|&side| side == padding.top);
    let options = [
        (spec.stride != 1).then(|| format!("/s{}", spec.stride)),
        match (uniform, padding.top) {
            (true, 0) => None,
            (true, pixels) => Some(format!("/p{pixels}")),
            (false, _) => Some("/psame".into()),
        },
        (spec.dilation != 1).then(|| format!("/d{}", spec.dilation)),
        (spec.groups != 1).then(|| format!("/g{}", spec.groups)),
    ];
    text.extend(options.into_iter().flatten());
    let mut items = vec![text];
    if spec.activation == Activation::Relu {
        items.push("relu".into());
    }
    items
}

/// A whole number of at least 1.
fn number(text: &str, what: &str) -> std::result::Result<u32, String> {
    match text.parse::<u32>() {
        Ok(value) if value >= 1 => Ok(value),
        _ => Err(format!(
            "{what} must be a whole number of at least 1, got `{text}`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(spec: &str) -> Vec<Item> {
        parse(spec, false)
            .unwrap()
            .into_iter()
            .map(|item| item.item)
            .collect()
    }

    #[test]
    fn a_conv_relu_pool_stack_parses_with_its_options() {
        let parsed = items("32x5, relu,maxpool2,64x3x1/s2/p1/d2/g4,maxpool3/s2,16x3/psame");
        assert_eq!(parsed.len(), 6);
        let Item::Conv(ConvItem::Cli(second)) = &parsed[3] else {
            panic!("{parsed:?}")
        };
        assert_eq!(
            (second.filters, second.kernel_size, second.stride),
            (64, (3, 1), 2)
        );
        assert_eq!((second.dilation, second.groups), (2, 4));
        assert_eq!(second.padding, PaddingMode::Pixels(1));
        assert_eq!(parsed[4], Item::MaxPool(PoolSpec { size: 3, stride: 2 }));
        let Item::Conv(ConvItem::Cli(last)) = &parsed[5] else {
            panic!()
        };
        assert_eq!(last.padding, PaddingMode::Same);
    }

    #[test]
    fn bad_items_are_refused_naming_the_item() {
        for (spec, named_item) in [
            ("32x5,relu,conv9", "item 3 `conv9`"),
            ("32x5,maxpool0", "item 2 `maxpool0`"),
            ("32x5/q2", "item 1 `32x5/q2`"),
            ("0x5", "item 1 `0x5`"),
            ("32x5,,relu", "item 2 ``"),
            ("maxpool2,32x5", "item 1 `maxpool2`"),
            ("relu,32x5", "item 1 `relu`"),
            ("4x1/é", "item 1 `4x1/é`"),
            ("4x1/ß2", "item 1 `4x1/ß2`"),
            ("4x1/p1/p2", "item 1 `4x1/p1/p2`"),
            ("4x1,maxpool2/s1/s2", "item 2 `maxpool2/s1/s2`"),
            ("é", "item 1 `é`"),
        ] {
            let error = parse(spec, false).unwrap_err().to_string();
            assert!(error.contains(named_item), "{spec}: {error}");
        }
    }

    #[test]
    fn a_layer_is_written_back_as_the_item_that_makes_it() {
        let mut spec = LayerSpec::new(3, 16, 3);
        spec.kernel_width = 5;
        spec.stride = 2;
        spec.padding = crate::layer::Padding::uniform(1);
        spec.dilation = 2;
        spec.groups = 1;
        assert_eq!(conv_items(&spec), ["16x3x5/s2/p1/d2"]);
        let Item::Conv(ConvItem::Cli(parsed)) = &items(&conv_items(&spec).join(","))[0] else {
            panic!()
        };
        assert_eq!(
            (
                parsed.filters,
                parsed.kernel_size,
                parsed.stride,
                parsed.dilation
            ),
            (16, (3, 5), 2, 2)
        );
        spec.activation = Activation::Relu;
        assert_eq!(conv_items(&LayerSpec::new(3, 32, 5)), ["32x5"]);
        assert_eq!(conv_items(&spec), ["16x3x5/s2/p1/d2", "relu"]);
    }

    #[test]
    fn with_a_model_other_items_are_layer_names() {
        let parsed = parse("/conv1/Conv,relu,features.3", true).unwrap();
        assert_eq!(
            parsed[0].item,
            Item::Conv(ConvItem::Named("/conv1/Conv".into()))
        );
        assert_eq!(
            parsed[2].item,
            Item::Conv(ConvItem::Named("features.3".into()))
        );
    }
}
