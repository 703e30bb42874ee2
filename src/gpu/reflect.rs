//! Test-only: the memory layout of a WGSL struct, as the shader compiler
//! lays it out, and of its `#[repr(C)]` twin on the host, so that a test can
//! hold the two equal. A uniform the host writes with fields at other
//! offsets than the shader reads them compiles and runs, with wrong values.

/// A struct's memory layout: its members in order of offset, each as
/// (name, offset in bytes, size in bytes), and its size in bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct StructLayout {
    pub(crate) members: Vec<(String, u32, u32)>,
    pub(crate) size: u32,
}

/// The layout of the struct `name` declared in the WGSL `source`, as the
/// shader compiler computes it. Panics when the source does not parse or
/// declares no such struct.
pub(crate) fn wgsl_struct(source: &str, name: &str) -> StructLayout {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{}", e.emit_to_string(source)));
    let mut layouter = naga::proc::Layouter::default();
    layouter
        .update(module.to_ctx())
        .expect("the types of the shader have a layout");
    let (_, ty) = module
        .types
        .iter()
        .find(|(_, ty)| ty.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("the shader declares no type {name}"));
    let naga::TypeInner::Struct { members, span } = &ty.inner else {
        panic!("{name} is not a struct in the shader");
    };
    let mut members: Vec<_> = members
        .iter()
        .map(|member| {
            let name = member.name.clone().unwrap_or_default();
            (name, member.offset, layouter[member.ty].size)
        })
        .collect();
    members.sort_by_key(|&(_, offset, _)| offset);
    StructLayout {
        members,
        size: *span,
    }
}

/// The [`StructLayout`] of the Rust struct `$name`, whose fields must all be
/// listed, in any order: `rust_struct!(Params { stride, dilation, … })`.
/// A field of the struct missing from the list is a compile error (the list
/// is matched against the struct by an exhaustive pattern: "pattern does not
/// mention field", or "pattern requires `..` due to inaccessible fields"
/// for a struct whose fields are private to its module), so a field added
/// on the host alone fails the test. The struct must be `Zeroable`.
macro_rules! rust_struct {
    ($name:ident { $($field:ident),+ $(,)? }) => {{
        let _every_field_listed = |value: &$name| {
            let $name { $($field: _),+ } = value;
        };
        let zeroed: $name = bytemuck::Zeroable::zeroed();
        let mut members = vec![$((
            stringify!($field).to_string(),
            std::mem::offset_of!($name, $field) as u32,
            std::mem::size_of_val(&zeroed.$field) as u32,
        )),+];
        members.sort_by_key(|&(_, offset, _)| offset);
        $crate::gpu::reflect::StructLayout {
            members,
            size: std::mem::size_of::<$name>() as u32,
        }
    }};
}
pub(crate) use rust_struct;

#[cfg(test)]
mod tests {
    use super::*;

    /// A host struct and a WGSL one, to check the checks themselves.
    #[repr(C)]
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    struct Pair {
        first: u32,
        second: f32,
    }

    const PAIR: &str = "struct Pair { first: u32, second: f32 }
        struct Swapped { second: f32, first: u32 }
        struct Longer { first: u32, second: f32, third: u32 }
        @group(0) @binding(0) var<uniform> pair: Pair;";

    #[test]
    fn equal_structs_have_equal_layouts() {
        let layout = rust_struct!(Pair { second, first });
        assert_eq!(
            layout.members,
            [("first".into(), 0, 4), ("second".into(), 4, 4)]
        );
        assert_eq!(layout, wgsl_struct(PAIR, "Pair"));
    }

    #[test]
    fn a_reordered_or_longer_struct_differs() {
        let layout = rust_struct!(Pair { first, second });
        assert_ne!(layout, wgsl_struct(PAIR, "Swapped"));
        assert_ne!(layout, wgsl_struct(PAIR, "Longer"));
    }

    #[test]
    #[should_panic(expected = "declares no type Missing")]
    fn a_missing_struct_panics() {
        wgsl_struct(PAIR, "Missing");
    }
}
