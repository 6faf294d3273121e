//! The one escaping rule for string scalars in rendered TML.
//!
//! Every string is written double-quoted, whatever it holds, so no reader can
//! take it for anything else: YAML 1.1 readers (ThoughtSpot's, PyYAML) turn
//! plain `yes`, `on`, `~`, `1_000`, `0x1F`, `1:30` or `2024-01-01` into
//! booleans, numbers, nulls or dates, and `a: b`, `a #b`, `- a` or `<<` change
//! the document's structure. Inside the quotes, `"` and `\` are escaped, as
//! is every character a YAML reader would not take literally: C0 controls
//! (JSON-style escapes), DEL, C1 controls (U+0085 is a line break in YAML
//! 1.1), U+2028/U+2029 (line and paragraph separators), U+FEFF (byte order
//! mark) and the non-characters U+FFFE/U+FFFF. Everything else, emoji and
//! right-to-left text included, is written as is.

use std::fmt::Write;

/// Strings that naive YAML output gets wrong (DESIGN §8): each must come
/// back from every reader exactly as it went in. The tests feed them, and
/// random mixes of them, through [`quote`].
pub const AWKWARD: &[&str] = &[
    "yes",
    "No",
    "on",
    "OFF",
    "y",
    "~",
    "null",
    "1_000",
    "1:30",
    "0x1F",
    "1e3",
    ".inf",
    "2024-01-01",
    "<<",
    "=",
    "- a",
    "a: b",
    "a #b",
    "\"",
    "'",
    "\\",
    " lead",
    "trail ",
    "",
    "a\tb",
    "l1\nl2",
    "cr\r\n",
    "🚀",
    "مرحبا",
    "\u{2028}\u{2029}",
    "\u{feff}",
    "\u{fffe}\u{ffff}",
    "\u{85}",
    "\u{7f}",
    "\u{0}",
    "{",
    "}",
    "[",
    "]",
    ",",
    "&a",
    "*a",
    "!tag",
    "%",
    "@",
    "`",
    "|",
    ">",
    "?",
    "#",
];

/// `value` as a double-quoted YAML scalar.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\0'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{feff}'
            | '\u{fffe}'
            | '\u{ffff}' => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_just_quoted() {
        assert_eq!(quote("TS_USERS"), "\"TS_USERS\"");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("yes"), "\"yes\"");
    }

    #[test]
    fn specials_are_escaped() {
        assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quote("l1\nl2\tx\r"), r#""l1\nl2\tx\r""#);
        assert_eq!(
            quote("\u{0}\u{1b}\u{7f}\u{85}"),
            r#""\u0000\u001B\u007F\u0085""#
        );
        assert_eq!(
            quote("a\u{2028}b\u{2029}\u{feff}\u{fffe}\u{ffff}"),
            r#""a\u2028b\u2029\uFEFF\uFFFE\uFFFF""#
        );
    }

    /// Reads `value: <quoted>` back.
    fn read_back(quoted: &str) -> String {
        let doc = format!("value: {quoted}\n");
        let map: std::collections::BTreeMap<String, String> =
            serde_saphyr::from_str(&doc).unwrap_or_else(|e| panic!("{doc:?}: {e}"));
        map["value"].clone()
    }

    #[test]
    fn the_cases_design_lists_round_trip() {
        for case in AWKWARD {
            assert_eq!(read_back(&quote(case)), *case);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_string_round_trips(value in proptest::prelude::any::<String>()) {
            proptest::prop_assert_eq!(read_back(&quote(&value)), value);
        }

        #[test]
        fn awkward_strings_round_trip(
            value in "(yes|No|on|~|null|1_000|0x1F|1e3|\\.inf|2024-01-01|<<|=|- |: | #|\"|'|\\\\| |\t|\n|\r|\u{2028}|\u{feff}|\u{85}|\u{7f}|🚀|[\x00-\x1f]|[a-z]){0,8}"
        ) {
            proptest::prop_assert_eq!(read_back(&quote(&value)), value);
        }
    }

    #[test]
    fn unicode_is_kept() {
        assert_eq!(quote("Ünïcødé 🚀 مرحبا"), "\"Ünïcødé 🚀 مرحبا\"");
    }
}
