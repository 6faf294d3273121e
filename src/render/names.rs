//! File names that work on every OS.

/// Windows reserves these names whatever the extension.
const RESERVED: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Longest stem kept, in bytes, leaving room for suffixes within the
/// common 255-byte file name limit.
const MAX_STEM: usize = 180;

/// `name` made safe as a file name stem on Windows, macOS and Linux:
/// characters that are reserved anywhere (`< > : " / \ | ? *`) and control
/// characters become `_`, as do leading dots (no hidden files); trailing
/// dots and spaces are dropped, reserved
/// device names get a trailing `_`, and very long names are cut at a
/// character boundary.
pub fn file_stem(name: &str) -> String {
    let mut stem: String = name
        .chars()
        .map(|c| match c {
            '<' | '>' | ':' | '"' | '/' | '\\' | '|' | '?' | '*' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    if stem.len() > MAX_STEM {
        let mut cut = MAX_STEM;
        while !stem.is_char_boundary(cut) {
            cut -= 1;
        }
        stem.truncate(cut);
    }
    let trimmed = stem.trim_end_matches(['.', ' ']).trim_start_matches(' ');
    // A leading dot would hide the file (and could mimic our own hidden
    // staging names): each becomes `_`.
    let visible = trimmed.trim_start_matches('.');
    let dots = trimmed.len() - visible.len();
    let mut stem = if trimmed.is_empty() {
        "_".to_owned()
    } else {
        format!("{}{visible}", "_".repeat(dots))
    };
    let device = stem
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    if RESERVED.contains(&device.as_str()) {
        stem.push('_');
    }
    stem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_characters_are_replaced() {
        assert_eq!(file_stem("TS: Users and Groups"), "TS_ Users and Groups");
        assert_eq!(file_stem("a/b\\c<d>e|f?g*h\"i"), "a_b_c_d_e_f_g_h_i");
        assert_eq!(file_stem("line\nbreak"), "line_break");
    }

    #[test]
    fn awkward_names_are_made_usable() {
        assert_eq!(file_stem("CON"), "CON_");
        assert_eq!(file_stem("nul.txt"), "nul.txt_");
        assert_eq!(file_stem("dots..."), "dots");
        assert_eq!(file_stem(" . "), "_");
        assert_eq!(file_stem(""), "_");
        assert_eq!(file_stem(".hidden"), "_hidden");
        assert_eq!(
            file_stem("..ts-principals-staging-0"),
            "__ts-principals-staging-0"
        );
        assert_eq!(file_stem("Ünïcødé 🚀"), "Ünïcødé 🚀");
    }

    #[test]
    fn long_names_are_cut_on_a_char_boundary() {
        let long = "é".repeat(200);
        let stem = file_stem(&long);
        assert!(stem.len() <= MAX_STEM);
        assert!(stem.chars().all(|c| c == 'é'));
    }
}
