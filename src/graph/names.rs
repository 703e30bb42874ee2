//! Folder names for a stack's layers. Exporters name layers `/conv1/Conv`
//! or `features.0`; a name must never lead outside the output directory,
//! so separators and other odd characters become `_`, leading dots and
//! underscores go, and names that clash (ignoring case) get a suffix.

/// Names the run itself writes at the top of its output directory, which
/// a layer's folder must not take.
const RESERVED: [&str; 15] = [
    "index.html",
    "summary.json",
    "input.png",
    "input.npy",
    "cam.png",
    "cam.npy",
    "cam_2.png",
    "cam_3.png",
    "cam_4.png",
    "cam_5.png",
    "cam_2.npy",
    "cam_3.npy",
    "cam_4.npy",
    "cam_5.npy",
    "layers",
];

/// A safe, distinct folder name for each layer name, in order.
pub fn folder_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut taken: Vec<String> = RESERVED.iter().map(|n| n.to_string()).collect();
    names
        .into_iter()
        .map(|name| {
            let base = safe_name(name);
            let mut folder = base.clone();
            let mut suffix = 2;
            while taken.iter().any(|t| t.eq_ignore_ascii_case(&folder)) {
                folder = format!("{base}-{suffix}");
                suffix += 1;
            }
            taken.push(folder.clone());
            folder
        })
        .collect()
}

/// `name` with every character but ASCII letters, digits, `-`, `_` and `.`
/// replaced by `_`, runs of `_` and `.` outside the name trimmed (so no
/// `.`, `..` or hidden folder), at most 64 characters; `layer` when
/// nothing is left.
fn safe_name(name: &str) -> String {
    let replaced: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed: String = replaced
        .trim_matches(|c| c == '_' || c == '.')
        .chars()
        .take(64)
        .collect();
    if trimmed.is_empty() {
        "layer".to_string()
    } else {
        trimmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exporter_names_become_plain_folder_names() {
        let names = folder_names(["/conv1/Conv", "features.0", "conv2"]);
        assert_eq!(names, ["conv1_Conv", "features.0", "conv2"]);
    }

    #[test]
    fn no_name_leads_outside_or_hides() {
        for name in [
            "..",
            "../..",
            "../x",
            "/etc/passwd",
            "a\\..\\b",
            ".hidden",
            "",
            "C:\\x",
        ] {
            let folder = &folder_names([name])[0];
            assert!(
                !folder.contains('/') && !folder.contains('\\'),
                "{name}: {folder}"
            );
            assert!(
                !folder.starts_with('.') && !folder.is_empty(),
                "{name}: {folder}"
            );
            assert_ne!(folder, "..");
        }
    }

    #[test]
    fn clashing_names_get_a_suffix() {
        let names = folder_names(["conv/1", "conv_1", "CONV_1", "summary.json"]);
        assert_eq!(names, ["conv_1", "conv_1-2", "CONV_1-3", "summary.json-2"]);
    }
}
