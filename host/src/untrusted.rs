//! Rendering untrusted text (anything a connector, a target or a source said)
//! safely for a terminal or a log line.
//!
//! A hostile connector controls many strings the host prints: its log
//! messages and fields, its errors, target ids, the test-connection message,
//! its manifest. Printed raw, such a string can move the cursor and overwrite
//! earlier output, retitle the terminal window, hide text, reorder text with
//! Unicode bidi controls, or start a new, forged line in a log file (a fake
//! `provisio::audit ... decision="allowed"` record). Every such string goes
//! through this module before it reaches a terminal or a log line:
//!
//! - [`escape`] / [`escape_capped`] / [`Untrusted`]: every character that is not
//!   plainly visible is shown as an escape: `\n`, `\r`, `\t`, `\x1b` (and
//!   `\xNN` for the other C0 controls and DEL), `\u{85}` for C1 controls,
//!   `\u{202e}` for bidi controls and other invisible format characters
//!   (zero-width spaces and joiners, word joiner, BOM, line and paragraph
//!   separators, tag characters, ...). The backslash itself is shown as `\\`,
//!   so the output is unambiguous: a guest cannot write a literal `\n` that
//!   reads like an escaped newline. The output is capped in bytes, with a
//!   marker saying how much was cut.
//! - [`Untrusted::for_log`] also escapes `"`, so that guest text inside a log
//!   line cannot forge a `key="value"` field of the host's own.
//! - [`json_safe`]: for JSON the host prints. JSON already escapes C0
//!   controls, but `serde_json` leaves DEL, C1 controls and bidi/format
//!   characters raw; these are rewritten as `\uXXXX` escapes, which decode to
//!   the same data (the document stays valid and equal), and no terminal
//!   acts on them.
//! - [`sanitize_record`]: the last line of defence in the log writer
//!   ([`crate::telemetry`]): one formatted record stays one line whatever a
//!   code path forgot to escape.
//!
//! Stored data is kept as received (the provisioning log, escrow); renderings
//! escape it.

use std::fmt;

/// Default cap, in bytes of output, of one rendered untrusted string.
pub const DEFAULT_MAX_BYTES: usize = 4096;

/// Whether `c` is shown as an escape rather than as itself.
pub fn needs_escape(c: char) -> bool {
    is_control(c) || is_invisible(c) || c == '\\'
}

/// C0 controls, DEL and C1 controls.
fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// Bidi controls and other invisible format characters (Unicode `Cf`, `Zl`,
/// `Zp` and friends that a terminal shows as nothing, or that change how
/// the text around them is shown).
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'              // soft hyphen
        | '\u{34f}'           // combining grapheme joiner
        | '\u{61c}'           // arabic letter mark (bidi)
        | '\u{115f}' | '\u{1160}' // hangul fillers
        | '\u{17b4}' | '\u{17b5}'
        | '\u{180b}'..='\u{180f}' // mongolian selectors and vowel separator
        | '\u{200b}'..='\u{200f}' // zero-width space/joiners, LRM, RLM
        | '\u{2028}' | '\u{2029}' // line and paragraph separators
        | '\u{202a}'..='\u{202e}' // bidi embeddings and overrides
        | '\u{2060}'..='\u{206f}' // word joiner, invisible operators, bidi isolates
        | '\u{3164}'          // hangul filler
        | '\u{feff}'          // BOM / zero-width no-break space
        | '\u{ffa0}'          // halfwidth hangul filler
        | '\u{fff9}'..='\u{fffb}' // interlinear annotations
        | '\u{1bca0}'..='\u{1bca3}' // shorthand format controls
        | '\u{1d173}'..='\u{1d17a}' // musical format controls
        | '\u{e0000}'..='\u{e007f}' // tag characters
    )
}

/// The visible form of one character (itself when it needs no escape).
fn push_escaped(out: &mut String, c: char, quotes: bool) {
    use fmt::Write as _;
    match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '"' if quotes => out.push_str("\\\""),
        '\u{0}'..='\u{1f}' | '\u{7f}' => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if is_control(c) || is_invisible(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// An untrusted string, displayed escaped and capped.
///
/// ```
/// use provisio::untrusted::Untrusted;
/// let shown = Untrusted::new("ok\x1b]0;owned\x07\r\nexport success").to_string();
/// assert_eq!(shown, r"ok\x1b]0;owned\x07\r\nexport success");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Untrusted<'a> {
    text: &'a str,
    max_bytes: usize,
    quotes: bool,
}

impl<'a> Untrusted<'a> {
    /// Wrap `text` with the default cap ([`DEFAULT_MAX_BYTES`]).
    pub fn new(text: &'a str) -> Self {
        Untrusted {
            text,
            max_bytes: DEFAULT_MAX_BYTES,
            quotes: false,
        }
    }

    /// Cap the rendered form at `max_bytes` (plus the cut marker).
    pub fn cap(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Also escape `"` (for text inside a log line).
    pub fn for_log(mut self) -> Self {
        self.quotes = true;
        self
    }

    /// The rendered form.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(self.text.len().min(self.max_bytes) + 16);
        let mut one = String::with_capacity(12);
        for (i, c) in self.text.char_indices() {
            one.clear();
            push_escaped(&mut one, c, self.quotes);
            if out.len() + one.len() > self.max_bytes {
                let rest = self.text.len() - i;
                out.push_str(&format!("…[{rest} more bytes cut]"));
                return out;
            }
            out.push_str(&one);
        }
        out
    }
}

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self
            .text
            .chars()
            .any(|c| needs_escape(c) || (self.quotes && c == '"'))
            && self.text.len() <= self.max_bytes
        {
            return f.write_str(self.text);
        }
        f.write_str(&self.render())
    }
}

/// `text` escaped for a terminal, capped at [`DEFAULT_MAX_BYTES`].
pub fn escape(text: &str) -> String {
    Untrusted::new(text).to_string()
}

/// `text` escaped for a terminal, capped at `max_bytes`.
pub fn escape_capped(text: &str, max_bytes: usize) -> String {
    Untrusted::new(text).cap(max_bytes).to_string()
}

/// `text` escaped for a log line (quotes too), capped at `max_bytes`.
pub fn escape_for_log(text: &str, max_bytes: usize) -> String {
    Untrusted::new(text).cap(max_bytes).for_log().to_string()
}

/// Rewrite the characters of serialized JSON that `serde_json` leaves raw but
/// a terminal acts on (DEL, C1 controls, bidi and invisible format
/// characters) as `\uXXXX` escapes. They can only occur inside JSON strings,
/// where the escape decodes to the same character: the document's data is
/// unchanged. Characters above U+FFFF are written as a surrogate pair.
pub fn json_safe(json: &str) -> String {
    use fmt::Write as _;
    if !json
        .chars()
        .any(|c| c == '\u{7f}' || is_control(c) && c > '\u{1f}' || is_invisible(c))
    {
        return json.to_string();
    }
    let mut out = String::with_capacity(json.len() + 32);
    for c in json.chars() {
        if c == '\u{7f}' || (is_control(c) && c > '\u{1f}') || is_invisible(c) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{u:04x}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The last line of defence for one formatted log record (see
/// [`crate::telemetry`]): every control character except the record's final
/// newline, and every bidi or invisible format character, is escaped, so the
/// record stays one line and cannot act on a terminal. In a JSON record
/// (starting with `{`) the escapes are JSON's `\uXXXX`, keeping it valid; in
/// a text record they are this module's. When `keep_sgr` is set (the host
/// colours its own text output on a terminal), `ESC [ digits ; ... m` colour
/// sequences are kept and every other escape sequence is escaped.
pub fn sanitize_record(record: &str, keep_sgr: bool) -> String {
    let (body, newline) = match record.strip_suffix('\n') {
        Some(b) => (b, "\n"),
        None => (record, ""),
    };
    let clean = |c: char| !is_control(c) && !is_invisible(c);
    if body.chars().all(clean) {
        return record.to_string();
    }
    if body.starts_with('{') {
        let mut out = json_safe(body);
        // serde_json never writes raw C0 characters; a record that has them
        // was not written by it: escape them the same way.
        if out.chars().any(|c| c < ' ') {
            out = out
                .chars()
                .map(|c| {
                    if c < ' ' {
                        format!("\\u{:04x}", c as u32)
                    } else {
                        c.to_string()
                    }
                })
                .collect();
        }
        out.push_str(newline);
        return out;
    }
    let mut out = String::with_capacity(body.len() + 32);
    let mut rest = body;
    while let Some(c) = rest.chars().next() {
        if keep_sgr
            && c == '\u{1b}'
            && let Some(len) = sgr_len(rest)
        {
            out.push_str(&rest[..len]);
            rest = &rest[len..];
            continue;
        }
        if clean(c) {
            out.push(c);
        } else {
            push_escaped(&mut out, c, false);
        }
        rest = &rest[c.len_utf8()..];
    }
    out.push_str(newline);
    out
}

/// The length of an SGR (colour) sequence `ESC [ [0-9;]* m` at the start of `s`.
fn sgr_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.len() < 3 || b[0] != 0x1b || b[1] != b'[' {
        return None;
    }
    let mut i = 2;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b';') {
        i += 1;
    }
    (i < b.len() && b[i] == b'm' && i <= 32).then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_unchanged() {
        for s in [
            "",
            "hello",
            "user@example.com",
            "Zoë 東京 ✓ 🎉",
            "a/b?c=d&e",
        ] {
            assert_eq!(escape(s), s);
        }
    }

    #[test]
    fn controls_are_shown_visibly() {
        assert_eq!(escape("a\nb\rc\td"), r"a\nb\rc\td");
        assert_eq!(escape("\x1b[31mred\x1b[0m"), r"\x1b[31mred\x1b[0m");
        assert_eq!(escape("\x1b]0;title\x07"), r"\x1b]0;title\x07");
        assert_eq!(escape("\0\x08\x7f"), r"\x00\x08\x7f");
        // C1: U+0085 (NEL) and U+009B (CSI) act like ESC sequences on some terminals.
        assert_eq!(escape("a\u{85}b\u{9b}2J"), r"a\u{85}b\u{9b}2J");
    }

    #[test]
    fn bidi_and_invisible_characters_are_shown() {
        assert_eq!(escape("abc\u{202e}gpj.exe"), r"abc\u{202e}gpj.exe");
        for c in [
            '\u{202a}',
            '\u{202b}',
            '\u{202c}',
            '\u{202d}',
            '\u{202e}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{200b}',
            '\u{200d}',
            '\u{feff}',
            '\u{2028}',
            '\u{2029}',
            '\u{e0041}',
            '\u{61c}',
            '\u{ad}',
        ] {
            let shown = escape(&c.to_string());
            assert_eq!(shown, format!("\\u{{{:x}}}", c as u32), "{c:?}");
            assert!(shown.is_ascii());
        }
    }

    #[test]
    fn backslash_is_escaped_so_output_is_unambiguous() {
        // A literal backslash-n and a real newline render differently.
        assert_eq!(escape(r"a\nb"), r"a\\nb");
        assert_eq!(escape("a\nb"), r"a\nb");
        assert_ne!(escape(r"\x1b"), escape("\x1b"));
    }

    #[test]
    fn quotes_are_escaped_only_for_logs() {
        assert_eq!(escape(r#"decision="allowed""#), r#"decision="allowed""#);
        assert_eq!(
            escape_for_log(r#"decision="allowed""#, 100),
            r#"decision=\"allowed\""#
        );
    }

    #[test]
    fn output_never_holds_a_raw_control_or_newline() {
        let all: String = (0u32..0x3000)
            .chain(0xe0000..0xe0080)
            .filter_map(char::from_u32)
            .collect();
        let shown = Untrusted::new(&all).cap(usize::MAX).to_string();
        assert!(!shown.chars().any(|c| is_control(c) || is_invisible(c)));
    }

    #[test]
    fn length_is_capped_with_a_marker() {
        let long = "x".repeat(10_000);
        let shown = escape_capped(&long, 100);
        assert!(shown.starts_with(&"x".repeat(100)));
        assert!(shown.ends_with("…[9900 more bytes cut]"), "{shown}");
        // Escapes count toward the cap: expansion cannot blow past it.
        let esc = "\x1b".repeat(10_000);
        let shown = escape_capped(&esc, 100);
        assert!(shown.len() < 140, "{}", shown.len());
        // A cut never splits an escape or a character.
        let shown = escape_capped("ab\x1bcd", 4);
        assert_eq!(shown, "ab…[3 more bytes cut]");
        let shown = escape_capped("ééé", 3);
        assert_eq!(shown, "é…[4 more bytes cut]");
    }

    #[test]
    fn json_safe_keeps_the_data() {
        let v = serde_json::json!({"id": "a\u{202e}b\u{7f}\u{9b}c\u{e0041}\n\x1b"});
        let raw = serde_json::to_string(&v).unwrap();
        assert!(
            raw.contains('\u{202e}'),
            "serde_json leaves bidi raw: {raw}"
        );
        let safe = json_safe(&raw);
        assert!(safe.is_ascii(), "{safe}");
        assert!(
            safe.contains(r"\u202e") && safe.contains(r"\udb40\udc41"),
            "{safe}"
        );
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn records_stay_one_line() {
        let forged = "INFO provisio::guest: hi\n2025-01-01T00:00:00Z INFO provisio::audit: egress decision=\"allowed\"\n";
        let clean = sanitize_record(forged, false);
        assert_eq!(clean.matches('\n').count(), 1, "{clean}");
        assert!(clean.ends_with('\n'));
        assert!(clean.contains(r"hi\n2025"), "{clean}");
        // Colours are kept only when asked, other escape sequences never.
        let coloured = "\x1b[2mtime\x1b[0m \x1b[32mINFO\x1b[0m x\x1b]0;t\x07\x1b[2K\n";
        let kept = sanitize_record(coloured, true);
        assert!(
            kept.starts_with("\x1b[2mtime\x1b[0m \x1b[32mINFO\x1b[0m x"),
            "{kept:?}"
        );
        assert!(kept.contains(r"\x1b]0;t\x07\x1b[2K"), "{kept:?}");
        let stripped = sanitize_record(coloured, false);
        assert!(!stripped.contains('\x1b'), "{stripped:?}");
        // JSON records stay valid JSON with the same data.
        let json = format!(
            "{}\n",
            serde_json::json!({"fields": {"message": "a\u{202e}b\u{85}"}})
        );
        let clean = sanitize_record(&json, false);
        assert!(clean.is_ascii());
        let v: serde_json::Value = serde_json::from_str(clean.trim_end()).unwrap();
        assert_eq!(v["fields"]["message"], "a\u{202e}b\u{85}");
    }
}
