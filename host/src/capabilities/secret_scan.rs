//! Finding and scrubbing secrets in any of the encodings a server may echo them in.
//!
//! Defence in depth for the secrets a connection holds (issue 9): the host
//! keeps secrets out of the guest by construction, and in addition scrubs every
//! response and refuses every outgoing request that carries a secret, in any
//! of the common encodings, not bound to its destination. This module is the
//! scanner both of those use. It is pure: no I/O, no globals, no logging.
//!
//! # How the parts fit
//!
//! [`SecretScanner::new`] takes the connection's secrets (a label, which the
//! scanner reports, and the value) and expands each value into its *forms*
//! ([`Form`]): a [`Text`] variant of the value (the value itself, its
//! upper- and lower-cased versions, its latin-1 and windows-1252 mojibake)
//! times an [`Encoding`] of that text (as is, six JSON string escapings, eight
//! percent-encodings, five HTML escapings, two byte-escape notations, hex,
//! base64 standard and URL-safe at each of the three alignments inside a
//! longer base64 text, which includes the value's own base64 with or without
//! padding, UTF-16LE and BE). Duplicates
//! (compared ASCII case-insensitively) are dropped, keeping the first, and
//! every remaining form becomes one pattern of a single Aho-Corasick automaton
//! (`aho-corasick`, leftmost-longest). One pass over a text therefore looks
//! for every form of every secret at once; no loop per pattern.
//!
//! [`SecretScanner::find`] and [`SecretScanner::find_all`] report matches
//! ([`Match`]: which secret, which form, the byte span);
//! [`SecretScanner::redact`] replaces every occurrence with
//! [`REDACTED`](super::secrets::REDACTED).
//!
//! # Decisions
//!
//! - **Case.** The automaton matches ASCII case-insensitively, for every form.
//!   For the value itself this catches a server that upper-cases what it
//!   echoes; for hex, percent-encodings and `\uXXXX` escapes the case of the
//!   hex digits carries no meaning; for base64 a case change destroys the
//!   encoding's meaning but not its information (each 4-character group of
//!   a case-folded base64 text has at most 16 candidates, and a printable
//!   secret usually picks one), so it is folded too. The cost is a few more
//!   false positives, none in practice at the minimum lengths below.
//!   Non-ASCII letters are not case-folded by the automaton; the value's
//!   full Unicode upper- and lower-case versions are separate text variants
//!   ([`Text::Upper`], [`Text::Lower`]), which also gives base64 and hex of
//!   the case-changed value.
//! - **Base64 inside a longer text.** `base64("user:" + secret)` does not
//!   contain `base64(secret)`: the secret's bytes fall at some offset modulo 3
//!   into the 3-byte groups. For each of the three offsets the scanner adds
//!   the *stable inner part*: the characters whose 6 bits all come from the
//!   secret, whatever precedes or follows it (at least
//!   [`MIN_BASE64_INNER`] characters). A character at either end of the
//!   inner part that carries only some of the secret's bits is redacted as
//!   well (the match span is widened by that one character, and by any `=`
//!   padding after it), so at most the two edge characters' non-secret bits
//!   are lost from the output.
//! - **Overlaps.** [`SecretScanner::find`] and [`SecretScanner::find_all`]
//!   report leftmost-longest, non-overlapping matches. [`SecretScanner::redact`]
//!   covers every occurrence: after a match the scan resumes one byte after
//!   the match's start, not after its end, so an occurrence that overlaps a
//!   previous one is still found; overlapping spans are merged into one
//!   `[REDACTED]`, adjacent ones are not.
//! - **Lengths.** A value shorter than [`MIN_SCAN_SECRET_LEN`] bytes is
//!   refused: its forms would match ordinary text. A value longer than
//!   [`MAX_SCAN_SECRET_LEN`] bytes is refused, and the whole set may expand
//!   to at most [`MAX_PATTERNS`] patterns of [`MAX_PATTERN_BYTES`] bytes in
//!   all, which bounds the automaton's memory and construction time.
//! - **Opaque values.** Values are only ever encoded, never interpreted.
//!   Neither errors nor `Debug` output show a value or any of its forms.
//!
//! # Limits
//!
//! The scanner finds contiguous encodings only. It does not find a secret
//! split into pieces (byte ranges, one character per response, a value
//! interleaved with other text), wrapped base64 (MIME line breaks inside the
//! secret's part), compositions of encodings other than the ones listed
//! (base64 of the JSON-escaped value, ...), other encodings (base32, base85,
//! quoted-printable, rot13, reversal, compression, encryption), or mixed-case
//! non-ASCII text. Those are the job of the by-construction measures: the
//! guest never holds a secret, so it has nothing to split or transform.
//!
//! Redaction time is linear in the text for values without self-overlap. A
//! periodic value (`abcabcab…`) in a text packed with overlapping copies of it
//! costs up to the text length times the longest form's length.

use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use std::collections::HashSet;
use std::fmt;
use std::ops::Range;

use super::secrets::REDACTED;

/// Values shorter than this many bytes (UTF-8) are refused: their raw,
/// case-folded form would match ordinary words. Stricter than the config
/// loader's [`MIN_SECRET_LEN`](super::secrets::MIN_SECRET_LEN).
pub const MIN_SCAN_SECRET_LEN: usize = 8;

/// Values longer than this many bytes are refused (a 4096-bit RSA key in PEM
/// is about 3.3 KB and fits).
pub const MAX_SCAN_SECRET_LEN: usize = 8 * 1024;

/// The most patterns one scanner holds (all forms of all its secrets).
pub const MAX_PATTERNS: usize = 16 * 1024;

/// The most bytes the patterns of one scanner may add up to.
pub const MAX_PATTERN_BYTES: usize = 2 * 1024 * 1024;

/// The shortest stable inner part of a base64 text that is used as a pattern
/// (48 bits of the secret).
pub const MIN_BASE64_INNER: usize = 8;

/// Why a scanner could not be built. Never contains a secret's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// A value is too short to scan for without false positives.
    #[error(
        "secret '{label}' is {len} bytes long; scanning for it needs at least {min} bytes \
         (shorter values would match ordinary text); use a longer credential"
    )]
    TooShort {
        /// The secret's label.
        label: String,
        /// Its length in bytes.
        len: usize,
        /// [`MIN_SCAN_SECRET_LEN`].
        min: usize,
    },
    /// A value is longer than the scanner accepts.
    #[error(
        "secret '{label}' is {len} bytes long; the secret scanner accepts at most {max} bytes; \
         store a shorter credential (or a reference to it)"
    )]
    TooLong {
        /// The secret's label.
        label: String,
        /// Its length in bytes.
        len: usize,
        /// [`MAX_SCAN_SECRET_LEN`].
        max: usize,
    },
    /// The secrets expand to too many patterns, or too large ones.
    #[error(
        "the {secrets} secrets given to the scanner expand to more than {max_patterns} patterns \
         or {max_bytes} bytes of patterns (at least {patterns} patterns, {bytes} bytes); \
         grant fewer or shorter secrets to this connection"
    )]
    TooManyPatterns {
        /// How many secrets were given.
        secrets: usize,
        /// Patterns counted when the limit was reached.
        patterns: usize,
        /// Pattern bytes counted when the limit was reached.
        bytes: usize,
        /// [`MAX_PATTERNS`].
        max_patterns: usize,
        /// [`MAX_PATTERN_BYTES`].
        max_bytes: usize,
    },
    /// The automaton could not be built (a limit of the `aho-corasick` crate).
    #[error("the secret scanner's automaton could not be built: {0}")]
    Build(String),
}

/// Which variant of the value's text an encoding was applied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Text {
    /// The value itself.
    Raw,
    /// Its Unicode upper-case version (differs from what ASCII
    /// case-insensitive matching covers for non-ASCII values, and for
    /// base64 and hex of any value).
    Upper,
    /// Its Unicode lower-case version.
    Lower,
    /// Its UTF-8 bytes read as latin-1 (ISO-8859-1) and re-encoded as UTF-8
    /// (`ä` → `Ã¤`).
    Latin1Mojibake,
    /// Its UTF-8 bytes read as windows-1252 (bytes it leaves undefined read
    /// as the C1 control of the same number, as WHATWG does) and re-encoded
    /// as UTF-8 (`🔑` → `ðŸ”‘`).
    Windows1252Mojibake,
}

impl Text {
    const ALL: [Text; 5] = [
        Text::Raw,
        Text::Upper,
        Text::Lower,
        Text::Latin1Mojibake,
        Text::Windows1252Mojibake,
    ];

    fn apply(self, value: &str) -> String {
        match self {
            Text::Raw => value.to_string(),
            Text::Upper => value.to_uppercase(),
            Text::Lower => value.to_lowercase(),
            Text::Latin1Mojibake => value.bytes().map(char::from).collect(),
            Text::Windows1252Mojibake => value.bytes().map(windows_1252).collect(),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Text::Raw => "the value",
            Text::Upper => "the upper-cased value",
            Text::Lower => "the lower-cased value",
            Text::Latin1Mojibake => "the value's latin-1 mojibake",
            Text::Windows1252Mojibake => "the value's windows-1252 mojibake",
        }
    }
}

/// How a JSON encoder escapes a string (the text between the quotes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonStyle {
    /// `serde_json`, Jackson, JavaScript: `"` `\` and control characters only.
    Minimal,
    /// As [`JsonStyle::Minimal`], and `/` as `\/` (PHP's `json_encode`).
    EscapedSlash,
    /// As [`JsonStyle::Minimal`], and `<` `>` `&` as `\u003c` … (Go's
    /// `encoding/json`).
    HtmlSafe,
    /// Everything outside printable ASCII as `\uXXXX`, astral characters as
    /// surrogate pairs (Python's `json.dumps`, `ensure_ascii=True`).
    AsciiOnly,
    /// As [`JsonStyle::AsciiOnly`], and `"` `'` `<` `>` `&` `+` `` ` `` as
    /// `\uXXXX` (.NET's `System.Text.Json` default encoder).
    DotNet,
    /// Every character as `\uXXXX`.
    EveryChar,
}

/// How a percent-encoder encodes the value's UTF-8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PercentStyle {
    /// Every byte as `%XX`.
    EveryByte,
    /// Everything but ASCII letters and digits.
    Alphanumeric,
    /// Everything but RFC 3986 unreserved characters (`A-Za-z0-9-._~`).
    Unreserved,
    /// As [`PercentStyle::Unreserved`] with space as `+` (Python's
    /// `quote_plus`, Go's `QueryEscape`).
    UnreservedPlus,
    /// `application/x-www-form-urlencoded` (WHATWG): keeps `A-Za-z0-9*-._`,
    /// space as `+`.
    Form,
    /// JavaScript's `encodeURIComponent`: keeps `A-Za-z0-9-_.!~*'()`.
    UriComponent,
    /// Python's `quote` with its default `safe='/'`.
    KeepSlash,
    /// JavaScript's `encodeURI`: also keeps `;,/?:@&=+$#`.
    Uri,
    /// [`PercentStyle::Unreserved`] applied twice (`%` as `%25`), as a
    /// redirect that re-encodes its `Location` produces.
    Twice,
}

/// How an HTML escaper escapes the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HtmlStyle {
    /// `&` `<` `>` only.
    Minimal,
    /// Python's `html.escape`: also `&quot;` and `&#x27;`.
    Python,
    /// Go's `html.EscapeString`: also `&#34;` and `&#39;`.
    Go,
    /// PHP's `htmlspecialchars`: also `&quot;` and `&#039;`.
    Php,
    /// Rails, ERB: also `&quot;` and `&#39;`.
    Rails,
}

/// How a byte-escaping notation shows the value's UTF-8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ByteEscapeStyle {
    /// Printable ASCII as is, `\` as `\\`, every other byte as `\xNN`
    /// (Python's `repr` of `bytes`, C string dumps).
    NonPrintable,
    /// Every byte as `\xNN`.
    EveryByte,
}

/// Which base64 alphabet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alphabet {
    /// `A-Za-z0-9+/`.
    Standard,
    /// `A-Za-z0-9-_`.
    UrlSafe,
}

impl Alphabet {
    fn contains(self, b: u8) -> bool {
        b.is_ascii_alphanumeric()
            || match self {
                Alphabet::Standard => b == b'+' || b == b'/',
                Alphabet::UrlSafe => b == b'-' || b == b'_',
            }
    }
}

/// How a text variant of the value is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// As it is (UTF-8).
    Plain,
    /// Escaped for the inside of a JSON string.
    Json(JsonStyle),
    /// Percent-encoded.
    Percent(PercentStyle),
    /// HTML-escaped.
    Html(HtmlStyle),
    /// Byte escapes (`\xNN`).
    ByteEscapes(ByteEscapeStyle),
    /// Hex of the UTF-8 bytes (matched in either case).
    Hex,
    /// The stable inner part of the base64 of a text that contains the
    /// value at `offset` (0, 1 or 2) bytes past a 3-byte group boundary.
    /// Offset 0 also finds the base64 of the value alone, padded or not: a
    /// match is widened by the partial character after it and any `=`.
    Base64 {
        /// Which alphabet.
        alphabet: Alphabet,
        /// The value's offset modulo 3.
        offset: u8,
    },
    /// UTF-16 code units as bytes.
    Utf16 {
        /// Big-endian (else little-endian).
        big_endian: bool,
    },
}

impl Encoding {
    /// Every encoding, in the order patterns are made (earlier wins a
    /// duplicate).
    fn all() -> Vec<Encoding> {
        use Encoding::*;
        let mut all = vec![Plain];
        all.extend(
            [
                JsonStyle::Minimal,
                JsonStyle::EscapedSlash,
                JsonStyle::HtmlSafe,
                JsonStyle::AsciiOnly,
                JsonStyle::DotNet,
                JsonStyle::EveryChar,
            ]
            .map(Json),
        );
        all.extend(
            [
                PercentStyle::Unreserved,
                PercentStyle::UnreservedPlus,
                PercentStyle::Form,
                PercentStyle::Alphanumeric,
                PercentStyle::UriComponent,
                PercentStyle::KeepSlash,
                PercentStyle::Uri,
                PercentStyle::EveryByte,
                PercentStyle::Twice,
            ]
            .map(Percent),
        );
        all.extend(
            [
                HtmlStyle::Minimal,
                HtmlStyle::Python,
                HtmlStyle::Go,
                HtmlStyle::Php,
                HtmlStyle::Rails,
            ]
            .map(Html),
        );
        all.extend([ByteEscapeStyle::NonPrintable, ByteEscapeStyle::EveryByte].map(ByteEscapes));
        all.push(Hex);
        for alphabet in [Alphabet::Standard, Alphabet::UrlSafe] {
            for offset in 0..3 {
                all.push(Base64 { alphabet, offset });
            }
        }
        all.push(Utf16 { big_endian: false });
        all.push(Utf16 { big_endian: true });
        all
    }

    /// The pattern for `text`, or `None` if this encoding gives no usable
    /// pattern for it (a base64 inner part that is too short).
    fn apply(self, text: &str) -> Option<Vec<u8>> {
        Some(match self {
            Encoding::Plain => text.as_bytes().to_vec(),
            Encoding::Json(style) => json_escape(text, style).into_bytes(),
            Encoding::Percent(style) => percent_encode(text, style).into_bytes(),
            Encoding::Html(style) => html_escape(text, style).into_bytes(),
            Encoding::ByteEscapes(style) => byte_escape(text, style).into_bytes(),
            Encoding::Hex => hex::encode(text.as_bytes()).into_bytes(),
            Encoding::Base64 { alphabet, offset } => {
                let inner = base64_inner(text.as_bytes(), alphabet, offset);
                if inner.len() < MIN_BASE64_INNER {
                    return None;
                }
                inner
            }
            Encoding::Utf16 { big_endian } => text
                .encode_utf16()
                .flat_map(|u| {
                    if big_endian {
                        u.to_be_bytes()
                    } else {
                        u.to_le_bytes()
                    }
                })
                .collect(),
        })
    }

    /// For a base64 inner part: whether the character before it, and the one
    /// after it, carry some of the value's bits.
    fn partial_edges(self, value_len: usize) -> (bool, bool) {
        match self {
            Encoding::Base64 { offset, .. } => {
                let start_bits = 8 * usize::from(offset);
                let end_bits = 8 * (usize::from(offset) + value_len);
                (!start_bits.is_multiple_of(6), !end_bits.is_multiple_of(6))
            }
            _ => (false, false),
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Encoding::Plain => f.write_str("plain"),
            Encoding::Json(s) => write!(f, "JSON-escaped ({s:?})"),
            Encoding::Percent(s) => write!(f, "percent-encoded ({s:?})"),
            Encoding::Html(s) => write!(f, "HTML-escaped ({s:?})"),
            Encoding::ByteEscapes(s) => write!(f, "byte escapes ({s:?})"),
            Encoding::Hex => f.write_str("hex"),
            Encoding::Base64 { alphabet, offset } => {
                write!(f, "base64 ({alphabet:?}, value at offset {offset} mod 3)")
            }
            Encoding::Utf16 { big_endian } => {
                f.write_str(if *big_endian { "UTF-16BE" } else { "UTF-16LE" })
            }
        }
    }
}

/// One form of a secret: an encoding of a text variant of its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Form {
    /// Which variant of the value.
    pub text: Text,
    /// How it was encoded.
    pub encoding: Encoding,
}

impl fmt::Display for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} of {}", self.encoding, self.text.describe())
    }
}

/// An occurrence of a secret in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match<'s> {
    /// The secret's label, as given to [`SecretScanner::new`].
    pub label: &'s str,
    /// The secret's index in the list given to [`SecretScanner::new`].
    pub secret: usize,
    /// Which form of it was found.
    pub form: Form,
    /// Whether the text differs from the form in ASCII case (the automaton
    /// matches case-insensitively).
    pub case_folded: bool,
    /// The bytes that carry the secret (for a base64 inner part, widened by
    /// the edge characters that carry some of its bits and any padding).
    pub span: Range<usize>,
}

/// What the scanner knows about one pattern.
struct PatternInfo {
    secret: usize,
    form: Form,
    /// The pattern's bytes (to tell whether a match is case-folded).
    bytes: Box<[u8]>,
    /// Widen a match by one character on the left / right (base64 inner).
    widen: (bool, bool),
}

/// One Aho-Corasick automaton over every form of every secret a connection
/// holds. Cheap to share (`&self` everywhere, `Send + Sync`).
pub struct SecretScanner {
    labels: Vec<String>,
    patterns: Vec<PatternInfo>,
    automaton: Option<AhoCorasick>,
}

impl fmt::Debug for SecretScanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the patterns: they are the secrets.
        f.debug_struct("SecretScanner")
            .field("labels", &self.labels)
            .field("patterns", &self.patterns.len())
            .finish_non_exhaustive()
    }
}

impl Default for SecretScanner {
    /// A scanner that finds nothing (a connection holding no secret).
    fn default() -> Self {
        SecretScanner {
            labels: Vec::new(),
            patterns: Vec::new(),
            automaton: None,
        }
    }
}

impl SecretScanner {
    /// Build the scanner for `secrets`, each a label (reported in matches and
    /// errors) and a value (never reported).
    ///
    /// Refuses a value shorter than [`MIN_SCAN_SECRET_LEN`] or longer than
    /// [`MAX_SCAN_SECRET_LEN`] bytes, and a set that expands to more than
    /// [`MAX_PATTERNS`] patterns or [`MAX_PATTERN_BYTES`] bytes. An empty set
    /// gives a scanner that finds nothing.
    pub fn new<L: AsRef<str>>(secrets: &[(L, &str)]) -> Result<SecretScanner, ScanError> {
        for (label, value) in secrets {
            let (label, len) = (label.as_ref(), value.len());
            if len < MIN_SCAN_SECRET_LEN {
                return Err(ScanError::TooShort {
                    label: label.to_string(),
                    len,
                    min: MIN_SCAN_SECRET_LEN,
                });
            }
            if len > MAX_SCAN_SECRET_LEN {
                return Err(ScanError::TooLong {
                    label: label.to_string(),
                    len,
                    max: MAX_SCAN_SECRET_LEN,
                });
            }
        }
        let encodings = Encoding::all();
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let mut patterns = Vec::new();
        let mut total_bytes = 0usize;
        for (index, (_, value)) in secrets.iter().enumerate() {
            let mut texts: Vec<(Text, String)> = Vec::new();
            for text in Text::ALL {
                let t = text.apply(value);
                if !texts.iter().any(|(_, s)| *s == t) {
                    texts.push((text, t));
                }
            }
            for (text, t) in &texts {
                for &encoding in &encodings {
                    #[cfg(test)]
                    if tests::disabled(*text, encoding) {
                        continue;
                    }
                    let Some(bytes) = encoding.apply(t) else {
                        continue;
                    };
                    if !seen.insert(dedup_key(&bytes)) {
                        continue;
                    }
                    total_bytes += bytes.len();
                    if patterns.len() >= MAX_PATTERNS || total_bytes > MAX_PATTERN_BYTES {
                        return Err(ScanError::TooManyPatterns {
                            secrets: secrets.len(),
                            patterns: patterns.len() + 1,
                            bytes: total_bytes,
                            max_patterns: MAX_PATTERNS,
                            max_bytes: MAX_PATTERN_BYTES,
                        });
                    }
                    patterns.push(PatternInfo {
                        secret: index,
                        form: Form {
                            text: *text,
                            encoding,
                        },
                        widen: encoding.partial_edges(t.len()),
                        bytes: bytes.into_boxed_slice(),
                    });
                }
            }
        }
        let automaton = if patterns.is_empty() {
            None
        } else {
            let mut builder = AhoCorasick::builder();
            // A contiguous NFA: for 10 secrets of 32 characters 320 KiB and
            // about 300 MB/s, where a DFA takes 9.5 MiB for about 540 MB/s
            // (figures from `measure_throughput_and_construction`).
            builder
                .match_kind(MatchKind::LeftmostLongest)
                .ascii_case_insensitive(case_folding())
                .kind(Some(AhoCorasickKind::ContiguousNFA));
            let automaton = builder
                .build(patterns.iter().map(|p| &p.bytes[..]))
                .map_err(|e| ScanError::Build(e.to_string()))?;
            Some(automaton)
        };
        Ok(SecretScanner {
            labels: secrets
                .iter()
                .map(|(l, _)| l.as_ref().to_string())
                .collect(),
            patterns,
            automaton,
        })
    }

    /// Whether the scanner holds no secrets (and so finds nothing).
    pub fn is_empty(&self) -> bool {
        self.automaton.is_none()
    }

    /// How many patterns (forms of secrets, duplicates removed) the automaton
    /// holds.
    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    /// The heap bytes the automaton uses.
    pub fn memory_usage(&self) -> usize {
        self.automaton.as_ref().map_or(0, AhoCorasick::memory_usage)
    }

    /// The first (leftmost, then longest) occurrence of any form of any
    /// secret in `haystack`.
    pub fn find(&self, haystack: &[u8]) -> Option<Match<'_>> {
        let m = self.raw_find(haystack, 0)?;
        Some(self.to_match(haystack, m))
    }

    /// Every occurrence, leftmost-longest and non-overlapping, in order.
    /// (An occurrence that overlaps an earlier one is not listed; see
    /// [`SecretScanner::redact`], which covers it.)
    pub fn find_all(&self, haystack: &[u8]) -> Vec<Match<'_>> {
        let mut out: Vec<Match<'_>> = Vec::new();
        let mut pos = 0;
        while let Some(m) = self.raw_find(haystack, pos) {
            let mut found = self.to_match(haystack, m);
            if let Some(last) = out.last() {
                found.span.start = found.span.start.max(last.span.end);
            }
            pos = found.span.end.max(m.end());
            out.push(found);
        }
        out
    }

    /// `haystack` with every occurrence of every form of every secret
    /// replaced by `[REDACTED]`, and how many replacements were made.
    /// Overlapping occurrences become one replacement; adjacent ones stay
    /// separate.
    pub fn redact(&self, haystack: &[u8]) -> (Vec<u8>, usize) {
        let spans = self.cover(haystack);
        if spans.is_empty() {
            return (haystack.to_vec(), 0);
        }
        let mut out = Vec::with_capacity(haystack.len());
        let mut pos = 0;
        for span in &spans {
            out.extend_from_slice(&haystack[pos..span.start]);
            out.extend_from_slice(REDACTED.as_bytes());
            pos = span.end;
        }
        out.extend_from_slice(&haystack[pos..]);
        (out, spans.len())
    }

    /// [`SecretScanner::redact`] for text.
    pub fn redact_str(&self, text: &str) -> String {
        let (bytes, n) = self.redact(text.as_bytes());
        if n == 0 {
            return text.to_string();
        }
        match String::from_utf8(bytes) {
            Ok(s) => s,
            // Spans start and end at character boundaries for every UTF-8
            // pattern; be safe for the others (UTF-16 bytes).
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }

    /// The sorted, merged spans covering every occurrence.
    fn cover(&self, haystack: &[u8]) -> Vec<Range<usize>> {
        let mut spans: Vec<Range<usize>> = Vec::new();
        let mut pos = 0;
        while let Some(m) = self.raw_find(haystack, pos) {
            let span = self.widen(haystack, m);
            match spans.last_mut() {
                Some(last) if span.start < last.end => last.end = last.end.max(span.end),
                _ => spans.push(span),
            }
            pos = m.start() + 1;
        }
        spans
    }

    fn raw_find(&self, haystack: &[u8], from: usize) -> Option<aho_corasick::Match> {
        let automaton = self.automaton.as_ref()?;
        if from >= haystack.len() {
            return None;
        }
        automaton.find(Input::new(haystack).span(from..haystack.len()))
    }

    fn to_match(&self, haystack: &[u8], m: aho_corasick::Match) -> Match<'_> {
        let info = &self.patterns[m.pattern().as_usize()];
        Match {
            label: &self.labels[info.secret],
            secret: info.secret,
            form: info.form,
            case_folded: haystack[m.range()] != *info.bytes,
            span: self.widen(haystack, m),
        }
    }

    /// The match's span, widened for a base64 inner part.
    fn widen(&self, haystack: &[u8], m: aho_corasick::Match) -> Range<usize> {
        let info = &self.patterns[m.pattern().as_usize()];
        let (mut start, mut end) = (m.start(), m.end());
        if let Encoding::Base64 { alphabet, .. } = info.form.encoding {
            let (left, right) = info.widen;
            if left && start > 0 && alphabet.contains(haystack[start - 1]) {
                start -= 1;
            }
            if right && end < haystack.len() && alphabet.contains(haystack[end]) {
                end += 1;
            }
            let mut padding = 0;
            while padding < 2 && end < haystack.len() && haystack[end] == b'=' {
                end += 1;
                padding += 1;
            }
        }
        start..end
    }
}

/// Whether matching folds ASCII case (always, but for the test that checks
/// that the case-folding tests fail without it).
fn case_folding() -> bool {
    #[cfg(test)]
    if tests::case_folding_disabled() {
        return false;
    }
    true
}

/// Patterns equal under this key are duplicates.
fn dedup_key(pattern: &[u8]) -> Vec<u8> {
    if case_folding() {
        pattern.to_ascii_lowercase()
    } else {
        pattern.to_vec()
    }
}

/// The characters of `base64(x + value + y)` that depend on `value` alone,
/// when `x.len() % 3 == offset`.
fn base64_inner(value: &[u8], alphabet: Alphabet, offset: u8) -> Vec<u8> {
    let offset = usize::from(offset);
    let mut buf = vec![0u8; offset];
    buf.extend_from_slice(value);
    buf.extend_from_slice(&[0, 0]);
    let encoded = match alphabet {
        Alphabet::Standard => STANDARD_NO_PAD.encode(&buf),
        Alphabet::UrlSafe => URL_SAFE_NO_PAD.encode(&buf),
    };
    // Character i holds bits [6i, 6i + 6); the value holds bits
    // [8 * offset, 8 * (offset + len)).
    let first = (8 * offset).div_ceil(6);
    let end = (8 * (offset + value.len())) / 6;
    encoded
        .as_bytes()
        .get(first..end)
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

fn json_escape(text: &str, style: JsonStyle) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        let unicode = match style {
            JsonStyle::EveryChar => true,
            JsonStyle::AsciiOnly => !(' '..='~').contains(&c),
            JsonStyle::DotNet => !(' '..='~').contains(&c) || "\"'<>&+`".contains(c),
            JsonStyle::HtmlSafe => "<>&".contains(c),
            JsonStyle::Minimal | JsonStyle::EscapedSlash => false,
        };
        if unicode && !(style == JsonStyle::DotNet && "\n\r\t\u{8}\u{c}".contains(c)) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
            continue;
        }
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if style == JsonStyle::EscapedSlash => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

fn percent_encode(text: &str, style: PercentStyle) -> String {
    if style == PercentStyle::Twice {
        let once = percent_encode(text, PercentStyle::Unreserved);
        return percent_encode(&once, PercentStyle::Unreserved);
    }
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        let keep = match style {
            PercentStyle::EveryByte => false,
            PercentStyle::Alphanumeric => b.is_ascii_alphanumeric(),
            PercentStyle::Unreserved | PercentStyle::UnreservedPlus | PercentStyle::Twice => {
                unreserved(b)
            }
            PercentStyle::Form => b.is_ascii_alphanumeric() || b"*-._".contains(&b),
            PercentStyle::UriComponent => b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b),
            PercentStyle::KeepSlash => unreserved(b) || b == b'/',
            PercentStyle::Uri => b.is_ascii_alphanumeric() || b"-_.!~*'();/?:@&=+$,#".contains(&b),
        };
        let plus = matches!(style, PercentStyle::UnreservedPlus | PercentStyle::Form);
        if keep {
            out.push(char::from(b));
        } else if b == b' ' && plus {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn html_escape(text: &str, style: HtmlStyle) -> String {
    let (quot, apos) = match style {
        HtmlStyle::Minimal => ("\"", "'"),
        HtmlStyle::Python => ("&quot;", "&#x27;"),
        HtmlStyle::Go => ("&#34;", "&#39;"),
        HtmlStyle::Php => ("&quot;", "&#039;"),
        HtmlStyle::Rails => ("&quot;", "&#39;"),
    };
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str(quot),
            '\'' => out.push_str(apos),
            c => out.push(c),
        }
    }
    out
}

fn byte_escape(text: &str, style: ByteEscapeStyle) -> String {
    let mut out = String::with_capacity(text.len() * 4);
    for b in text.bytes() {
        match style {
            ByteEscapeStyle::NonPrintable if b == b'\\' => out.push_str("\\\\"),
            ByteEscapeStyle::NonPrintable if (b' '..=b'~').contains(&b) => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// The character windows-1252 shows for a byte (undefined bytes as the C1
/// control of the same number, as WHATWG's decoder does).
fn windows_1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '\u{20AC}', '\u{81}', '\u{201A}', '\u{192}', '\u{201E}', '\u{2026}', '\u{2020}',
        '\u{2021}', '\u{2C6}', '\u{2030}', '\u{160}', '\u{2039}', '\u{152}', '\u{8D}', '\u{17D}',
        '\u{8F}', '\u{90}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}',
        '\u{2014}', '\u{2DC}', '\u{2122}', '\u{161}', '\u{203A}', '\u{153}', '\u{9D}', '\u{17E}',
        '\u{178}',
    ];
    match b {
        0x80..=0x9F => HIGH[usize::from(b - 0x80)],
        b => char::from(b),
    }
}

#[cfg(test)]
mod tests {
    //! Each form test encodes the secrets with code independent of the
    //! builder (serde_json, the base64, hex and url crates, or by hand), so
    //! removing a form from [`Encoding::all`] makes its test fail.

    use super::*;
    use base64::engine::general_purpose as b64;
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;

    /// A protection removed, for [`every_form_is_needed_by_a_test`].
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Mutation {
        Text(Text),
        Encoding(Encoding),
        CaseFolding,
    }

    thread_local! {
        static MUTATION: Cell<Option<Mutation>> = const { Cell::new(None) };
        static SCANNER: RefCell<Option<(Option<Mutation>, Rc<SecretScanner>)>> =
            const { RefCell::new(None) };
    }

    /// The builder skips this form (under a mutation).
    pub(super) fn disabled(text: Text, encoding: Encoding) -> bool {
        match MUTATION.with(Cell::get) {
            Some(Mutation::Text(t)) => t == text,
            Some(Mutation::Encoding(e)) => e == encoding,
            _ => false,
        }
    }

    /// The builder matches case-sensitively (under a mutation).
    pub(super) fn case_folding_disabled() -> bool {
        MUTATION.with(Cell::get) == Some(Mutation::CaseFolding)
    }

    const TOKEN: &str = "tok_9fQ2xLm4Rz8WvB1nK7pD3sHq6YcJ0aTe";
    const SLASHY: &str = "k3y/With+Plus=eq/And+More==";
    const UNICODE: &str = "pässwörd-Ω-🔑";
    const QUOTED: &str = r#"pa ss"wo'rd\back\\slash<&>~*"#;
    /// Non-ASCII with JSON, HTML and URL specials: tells apart encoders
    /// that agree on the others.
    const MIXED: &str = "Grüße /\"Ünï\"&<cödé>~*";
    const ALL: [(&str, &str); 5] = [
        ("token", TOKEN),
        ("slashy", SLASHY),
        ("unicode", UNICODE),
        ("quoted", QUOTED),
        ("mixed", MIXED),
    ];

    /// The scanner over [`ALL`] (built once per thread and mutation).
    fn scanner() -> Rc<SecretScanner> {
        let mutation = MUTATION.with(Cell::get);
        SCANNER.with(|cache| {
            let mut cache = cache.borrow_mut();
            match &*cache {
                Some((m, s)) if *m == mutation => s.clone(),
                _ => {
                    let s = Rc::new(SecretScanner::new(&ALL).unwrap());
                    *cache = Some((mutation, s.clone()));
                    s
                }
            }
        })
    }

    /// The secret's label if `sample` (embedded in JSON text) is found and
    /// redacted to exactly `[REDACTED]`.
    fn assert_caught(s: &SecretScanner, label: &str, what: &str, sample: &[u8]) {
        let mut hay = b"{\"id\":42,\"echo\":\"".to_vec();
        hay.extend_from_slice(sample);
        hay.extend_from_slice(b"\",\"more\":\"text\"}");
        let m = s
            .find(&hay)
            .unwrap_or_else(|| panic!("{label}: {what} not found"));
        assert_eq!(m.label, label, "{what}: found as {}", m.form);
        assert_eq!(m.span, 17..17 + sample.len(), "{label}: {what}: {}", m.form);
        let (out, n) = s.redact(&hay);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "{\"id\":42,\"echo\":\"[REDACTED]\",\"more\":\"text\"}",
            "{label}: {what}"
        );
        assert_eq!(n, 1, "{label}: {what}");
    }

    fn each(what: &str, encode: impl Fn(&str) -> Vec<u8>) {
        let s = scanner();
        for (label, value) in ALL {
            assert_caught(&s, label, what, &encode(value));
        }
    }

    /// Only the secrets for which `encode` gives something other than the
    /// value itself (a form that does not apply to plain tokens).
    fn each_changed(what: &str, encode: impl Fn(&str) -> Vec<u8>) -> usize {
        let s = scanner();
        let mut n = 0;
        for (label, value) in ALL {
            let e = encode(value);
            if !e.eq_ignore_ascii_case(value.as_bytes()) {
                assert_caught(&s, label, what, &e);
                n += 1;
            }
        }
        n
    }

    fn serde_inner(v: &str) -> String {
        let j = serde_json::to_string(v).unwrap();
        j[1..j.len() - 1].to_string()
    }

    fn u_escape(c: char, upper: bool) -> String {
        let mut units = [0u16; 2];
        c.encode_utf16(&mut units)
            .iter()
            .map(|u| {
                if upper {
                    format!("\\u{u:04X}")
                } else {
                    format!("\\u{u:04x}")
                }
            })
            .collect()
    }

    #[test]
    fn raw() {
        each("raw", |v| v.as_bytes().to_vec());
    }

    #[test]
    fn case_folded_ascii() {
        each("upper", |v| v.to_ascii_uppercase().into_bytes());
        each("lower", |v| v.to_ascii_lowercase().into_bytes());
        each("alternating", |v| {
            v.bytes()
                .enumerate()
                .map(|(i, b)| {
                    if i % 2 == 0 {
                        b.to_ascii_uppercase()
                    } else {
                        b.to_ascii_lowercase()
                    }
                })
                .collect()
        });
        let s = scanner();
        let m = s.find(TOKEN.to_ascii_uppercase().as_bytes()).unwrap();
        assert!(m.case_folded);
        assert!(!s.find(TOKEN.as_bytes()).unwrap().case_folded);
    }

    #[test]
    fn case_changed_unicode() {
        // "PÄSSWÖRD-Ω-🔑": Ä and Ö are not ASCII, so case-insensitive
        // matching alone misses them.
        assert_eq!(
            each_changed("unicode upper", |v| v.to_uppercase().into_bytes()),
            2
        );
        assert_eq!(
            each_changed("unicode lower", |v| v.to_lowercase().into_bytes()),
            2
        );
        // Base64 and hex of the case-changed value (ASCII case folding does
        // not reach inside them).
        each("base64 of upper", |v| {
            b64::STANDARD.encode(v.to_uppercase()).into_bytes()
        });
        each("hex of lower", |v| {
            hex::encode(v.to_lowercase()).into_bytes()
        });
    }

    #[test]
    fn json_serde() {
        assert_eq!(
            each_changed("serde_json", |v| serde_inner(v).into_bytes()),
            2
        );
    }

    #[test]
    fn json_escaped_slash() {
        assert_eq!(
            each_changed("json \\/", |v| serde_inner(v)
                .replace('/', "\\/")
                .into_bytes()),
            3
        );
    }

    #[test]
    fn json_html_safe() {
        // Go's encoding/json.
        let go = |v: &str| {
            serde_inner(v)
                .replace('<', "\\u003c")
                .replace('>', "\\u003e")
                .replace('&', "\\u0026")
                .into_bytes()
        };
        assert_eq!(each_changed("json go", go), 2);
    }

    #[test]
    fn json_ascii_only() {
        // Python's json.dumps, upper- and lower-case hex digits.
        for upper in [false, true] {
            let python = |v: &str| {
                v.chars()
                    .map(|c| {
                        if c.is_ascii() && !c.is_ascii_control() {
                            serde_inner(&c.to_string())
                        } else {
                            u_escape(c, upper)
                        }
                    })
                    .collect::<String>()
                    .into_bytes()
            };
            assert_eq!(each_changed("json ascii-only", python), 3);
        }
        // The key as a surrogate pair.
        let s = scanner();
        assert!(s.find(b"-\\ud83d\\udd11").is_none(), "too short alone");
        assert_caught(
            &s,
            "unicode",
            "surrogates",
            br"p\u00e4ssw\u00f6rd-\u03a9-\ud83d\udd11",
        );
    }

    #[test]
    fn json_dotnet() {
        let dotnet = |v: &str| {
            v.chars()
                .map(|c| match c {
                    '\\' => "\\\\".to_string(),
                    c if c.is_ascii() && !c.is_ascii_control() && !"\"'<>&+`".contains(c) => {
                        c.to_string()
                    }
                    c => u_escape(c, true),
                })
                .collect::<String>()
                .into_bytes()
        };
        assert_eq!(each_changed("json .NET", dotnet), 4);
    }

    #[test]
    fn json_every_char() {
        for upper in [false, true] {
            each("json every char", |v| {
                v.chars()
                    .map(|c| u_escape(c, upper))
                    .collect::<String>()
                    .into_bytes()
            });
        }
    }

    fn percent(v: &str, keep: impl Fn(u8) -> bool, upper: bool) -> Vec<u8> {
        v.bytes()
            .map(|b| match b {
                b if keep(b) => char::from(b).to_string(),
                b if upper => format!("%{b:02X}"),
                b => format!("%{b:02x}"),
            })
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn percent_every_byte() {
        for upper in [false, true] {
            each("percent every byte", |v| percent(v, |_| false, upper));
        }
    }

    #[test]
    fn percent_unreserved() {
        for upper in [false, true] {
            let rfc3986 = |v: &str| {
                percent(
                    v,
                    |b| b.is_ascii_alphanumeric() || b"-._~".contains(&b),
                    upper,
                )
            };
            assert_eq!(each_changed("percent rfc 3986", rfc3986), 4);
        }
    }

    #[test]
    fn percent_alphanumeric() {
        // Rust's percent-encoding NON_ALPHANUMERIC.
        let alnum = |v: &str| percent(v, |b| b.is_ascii_alphanumeric(), true);
        assert_eq!(each_changed("percent alphanumeric", alnum), 5);
    }

    #[test]
    fn percent_unreserved_plus_for_space() {
        // Python's quote_plus, Go's QueryEscape.
        let plus = |v: &str| {
            String::from_utf8(percent(
                v,
                |b| b.is_ascii_alphanumeric() || b" -._~".contains(&b),
                true,
            ))
            .unwrap()
            .replace(' ', "+")
            .into_bytes()
        };
        assert_eq!(each_changed("quote_plus", plus), 4);
    }

    #[test]
    fn percent_uri() {
        // JavaScript's encodeURI.
        let uri = |v: &str| {
            percent(
                v,
                |b| b.is_ascii_alphanumeric() || b"-_.!~*'();/?:@&=+$,#".contains(&b),
                false,
            )
        };
        assert_eq!(each_changed("encodeURI", uri), 3);
    }

    #[test]
    fn percent_form_plus_for_space() {
        let form = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        assert!(form(QUOTED).contains('+'));
        assert_eq!(each_changed("form-urlencoded", |v| form(v).into_bytes()), 4);
    }

    #[test]
    fn percent_uri_component() {
        let js = |v: &str| {
            percent(
                v,
                |b| b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b),
                true,
            )
        };
        assert_eq!(each_changed("encodeURIComponent", js), 4);
    }

    #[test]
    fn percent_keep_slash() {
        let py = |v: &str| {
            percent(
                v,
                |b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b),
                true,
            )
        };
        assert_eq!(each_changed("python quote", py), 4);
    }

    #[test]
    fn percent_twice() {
        let rfc = |v: &str| {
            String::from_utf8(percent(
                v,
                |b| b.is_ascii_alphanumeric() || b"-._~".contains(&b),
                true,
            ))
            .unwrap()
        };
        assert_eq!(
            each_changed("percent twice", |v| rfc(&rfc(v)).into_bytes()),
            4
        );
    }

    #[test]
    fn html() {
        let s = scanner();
        for sample in [
            r#"pa ss&quot;wo&#x27;rd\back\\slash&lt;&amp;&gt;~*"#,
            r#"pa ss&#34;wo&#39;rd\back\\slash&lt;&amp;&gt;~*"#,
            r#"pa ss&quot;wo&#039;rd\back\\slash&lt;&amp;&gt;~*"#,
            r#"pa ss&quot;wo&#39;rd\back\\slash&lt;&amp;&gt;~*"#,
            r#"pa ss"wo'rd\back\\slash&lt;&amp;&gt;~*"#,
        ] {
            assert_caught(&s, "quoted", "html", sample.as_bytes());
        }
    }

    #[test]
    fn byte_escapes() {
        let s = scanner();
        assert_caught(
            &s,
            "unicode",
            "python bytes repr",
            br"p\xc3\xa4ssw\xc3\xb6rd-\xce\xa9-\xf0\x9f\x94\x91",
        );
        each("every byte \\x", |v| {
            v.bytes()
                .map(|b| format!("\\x{b:02X}"))
                .collect::<String>()
                .into_bytes()
        });
    }

    #[test]
    fn hex_both_cases() {
        each("hex lower", |v| hex::encode(v).into_bytes());
        each("hex upper", |v| hex::encode_upper(v).into_bytes());
    }

    #[test]
    fn base64_standalone() {
        each("base64 std padded", |v| {
            b64::STANDARD.encode(v).into_bytes()
        });
        each("base64 std unpadded", |v| {
            b64::STANDARD_NO_PAD.encode(v).into_bytes()
        });
        each("base64 url padded", |v| {
            b64::URL_SAFE.encode(v).into_bytes()
        });
        each("base64 url unpadded", |v| {
            b64::URL_SAFE_NO_PAD.encode(v).into_bytes()
        });
        // Case-folded base64 (a server that upper-cases its output).
        each("base64 upper-cased", |v| {
            b64::STANDARD.encode(v).to_ascii_uppercase().into_bytes()
        });
    }

    /// base64 of `prefix + secret + suffix` at every alignment: found, and
    /// nothing left outside `[REDACTED]` carries a bit of the secret.
    fn embedded_base64(engine: &impl base64::Engine) {
        let s = scanner();
        let prefixes: [&[u8]; 6] = [b"", b"u", b"us", b"user:", b"Bearer", b"x:y:z:w"];
        let suffixes: [&[u8]; 4] = [b"", b":", b"@x", b"&more=1"];
        for (label, value) in ALL {
            for prefix in prefixes {
                for suffix in suffixes {
                    let plain = [prefix, value.as_bytes(), suffix].concat();
                    let encoded = engine.encode(&plain);
                    let hay = format!("Authorization: Basic {encoded}\r\n");
                    let what = format!("{label} in {prefix:?}+secret+{suffix:?}");
                    let m = s.find(hay.as_bytes()).unwrap_or_else(|| panic!("{what}"));
                    assert_eq!(m.label, label, "{what}");
                    let out = s.redact_str(&hay);
                    let kept = out
                        .strip_prefix("Authorization: Basic ")
                        .and_then(|o| o.strip_suffix("\r\n"))
                        .unwrap_or_else(|| panic!("{what}: {out}"));
                    let (before, after) = kept
                        .split_once(REDACTED)
                        .unwrap_or_else(|| panic!("{what}: {out}"));
                    // Characters made of prefix bits only: floor(8p / 6).
                    assert!(before.len() <= 8 * prefix.len() / 6, "{what}: {out}");
                    assert!(encoded.starts_with(before), "{what}: {out}");
                    // After: only characters made of suffix bits (and the
                    // zero bits that complete the last one), then padding.
                    let chars = after.trim_end_matches('=');
                    assert!(
                        chars.len() <= (8 * suffix.len()).div_ceil(6),
                        "{what}: {out}"
                    );
                    assert!(!chars.contains('='), "{what}: {out}");
                    assert!(encoded.ends_with(after), "{what}: {out}");
                }
            }
        }
    }

    #[test]
    fn base64_embedded_standard() {
        embedded_base64(&b64::STANDARD);
        embedded_base64(&b64::STANDARD_NO_PAD);
    }

    #[test]
    fn base64_embedded_url_safe() {
        embedded_base64(&b64::URL_SAFE);
        embedded_base64(&b64::URL_SAFE_NO_PAD);
    }

    #[test]
    fn mojibake() {
        let s = scanner();
        // UTF-8 read as latin-1, re-encoded as UTF-8.
        let latin1: String = UNICODE.bytes().map(char::from).collect();
        assert_eq!(latin1.chars().count(), UNICODE.len());
        assert_caught(&s, "unicode", "latin-1 mojibake", latin1.as_bytes());
        // ... and as windows-1252 (0x9F is Ÿ, 0x94 ”, 0x91 ‘).
        assert_caught(
            &s,
            "unicode",
            "windows-1252 mojibake",
            "pÃ¤sswÃ¶rd-Î©-ðŸ”‘".as_bytes(),
        );
        // The mojibake, JSON-escaped by Python.
        let python: String = latin1
            .chars()
            .map(|c| {
                if c.is_ascii() {
                    c.to_string()
                } else {
                    u_escape(c, false)
                }
            })
            .collect();
        assert_caught(&s, "unicode", "json of mojibake", python.as_bytes());
    }

    #[test]
    fn utf16() {
        each("utf-16le", |v| {
            v.encode_utf16().flat_map(u16::to_le_bytes).collect()
        });
        each("utf-16be", |v| {
            v.encode_utf16().flat_map(u16::to_be_bytes).collect()
        });
        // Case-folded UTF-16 of an ASCII secret.
        each("utf-16le upper", |v| {
            v.to_ascii_uppercase()
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect()
        });
    }

    /// The tests of forms, for [`every_form_is_needed_by_a_test`].
    const FORM_TESTS: &[(&str, fn())] = &[
        ("raw", raw),
        ("case_folded_ascii", case_folded_ascii),
        ("case_changed_unicode", case_changed_unicode),
        ("json_serde", json_serde),
        ("json_escaped_slash", json_escaped_slash),
        ("json_html_safe", json_html_safe),
        ("json_ascii_only", json_ascii_only),
        ("json_dotnet", json_dotnet),
        ("json_every_char", json_every_char),
        ("percent_every_byte", percent_every_byte),
        ("percent_unreserved", percent_unreserved),
        ("percent_alphanumeric", percent_alphanumeric),
        (
            "percent_unreserved_plus_for_space",
            percent_unreserved_plus_for_space,
        ),
        ("percent_uri", percent_uri),
        ("percent_form_plus_for_space", percent_form_plus_for_space),
        ("percent_uri_component", percent_uri_component),
        ("percent_keep_slash", percent_keep_slash),
        ("percent_twice", percent_twice),
        ("html", html),
        ("byte_escapes", byte_escapes),
        ("hex_both_cases", hex_both_cases),
        ("base64_standalone", base64_standalone),
        ("base64_embedded_standard", base64_embedded_standard),
        ("base64_embedded_url_safe", base64_embedded_url_safe),
        ("mojibake", mojibake),
        ("utf16", utf16),
    ];

    /// The mutation check, automated: with any one form (an encoding, a
    /// text variant, case folding) removed from the builder, at least one
    /// of the form tests fails. A form no test needs is either redundant
    /// (drop it) or untested (test it).
    #[test]
    fn every_form_is_needed_by_a_test() {
        let mut mutations: Vec<Mutation> = Encoding::all()
            .into_iter()
            .map(Mutation::Encoding)
            .collect();
        mutations.extend(Text::ALL.map(Mutation::Text));
        mutations.push(Mutation::CaseFolding);
        let mut report = Vec::new();
        let mut unguarded = Vec::new();
        for mutation in mutations {
            MUTATION.with(|m| m.set(Some(mutation)));
            let failing: Vec<&str> = FORM_TESTS
                .iter()
                .filter(|(_, test)| std::panic::catch_unwind(*test).is_err())
                .map(|(name, _)| *name)
                .collect();
            MUTATION.with(|m| m.set(None));
            report.push(format!(
                "without {mutation:?}: {} fail: {failing:?}",
                failing.len()
            ));
            if failing.is_empty() {
                unguarded.push(mutation);
            }
        }
        println!("{}", report.join("\n"));
        assert!(unguarded.is_empty(), "forms no test needs: {unguarded:?}");
        // And without a mutation they all pass.
        for (name, test) in FORM_TESTS {
            assert!(std::panic::catch_unwind(*test).is_ok(), "{name}");
        }
    }

    #[test]
    fn text_without_secrets_is_untouched() {
        let s = scanner();
        let mut near = TOKEN.to_string();
        near.replace_range(10..11, "#");
        let text = format!(
            "{{\"users\":[{{\"id\":\"2819c223-7f76-453a-919d-413861904646\",\
             \"userName\":\"bjensen@example.com\",\"password\":\"hunter22-not-it\",\
             \"name\":{{\"givenName\":\"Bärbel\",\"familyName\":\"Ωmega 🔑\"}},\
             \"near\":\"{near}\",\"prefix\":\"{}\",\"b64\":\"{}\"}}]}}",
            &TOKEN[..TOKEN.len() - 1],
            b64::STANDARD.encode(&TOKEN[..6])
        );
        assert!(
            s.find(text.as_bytes()).is_none(),
            "{:?}",
            s.find(text.as_bytes())
        );
        assert!(s.find_all(text.as_bytes()).is_empty());
        assert_eq!(s.redact(text.as_bytes()), (text.as_bytes().to_vec(), 0));
        assert_eq!(s.redact_str(&text), text);
        // 1 MiB of ordinary JSON.
        let big = bench_json(1 << 20);
        assert!(s.find(&big).is_none());
    }

    #[test]
    fn adjacent_occurrences_are_each_redacted() {
        let s = scanner();
        let text = format!("{TOKEN}{TOKEN} {SLASHY}{}", hex::encode(TOKEN));
        let all = s.find_all(text.as_bytes());
        let labels: Vec<_> = all.iter().map(|m| m.label).collect();
        assert_eq!(labels, ["token", "token", "slashy", "token"]);
        assert_eq!(all[0].span, 0..TOKEN.len());
        assert_eq!(all[1].span, TOKEN.len()..2 * TOKEN.len());
        assert_eq!(all[3].form.encoding, Encoding::Hex);
        assert_eq!(
            s.redact_str(&text),
            "[REDACTED][REDACTED] [REDACTED][REDACTED]"
        );
        assert_eq!(s.redact(text.as_bytes()).1, 4);
    }

    #[test]
    fn overlapping_occurrences_are_covered_whole() {
        // Two secrets sharing a stretch of text.
        let s = SecretScanner::new(&[("a", "alpha-beta-gamma-1"), ("b", "gamma-1-delta-epsilon")])
            .unwrap();
        let text = "<alpha-beta-gamma-1-delta-epsilon>";
        let all = s.find_all(text.as_bytes());
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].label, "a");
        assert_eq!(s.redact_str(text), "<[REDACTED]>");

        // A secret that overlaps itself: leftmost-longest alone would leave
        // "zxy" (the end of the second copy) visible.
        let s = SecretScanner::new(&[("p", "xyzxyzxy")]).unwrap();
        assert_eq!(s.redact_str("[xyzxyzxyzxy]"), "[[REDACTED]]");
        assert_eq!(s.redact_str("aaxyzXYZxyzxyaa"), "aa[REDACTED]aa");

        // A secret containing another: the longer one wins.
        let s =
            SecretScanner::new(&[("short", "token-123456"), ("long", "token-123456-ext")]).unwrap();
        let m = s.find(b"x token-123456-ext y").unwrap();
        assert_eq!((m.label, m.span), ("long", 2..18));
        assert_eq!(
            s.redact_str("x token-123456-ext y token-123456"),
            "x [REDACTED] y [REDACTED]"
        );
    }

    #[test]
    fn every_form_of_a_secret_is_one_pattern_of_one_automaton() {
        let s = scanner();
        assert!(s.automaton.is_some());
        let forms: HashSet<Form> = s.patterns.iter().map(|p| p.form).collect();
        assert_eq!(forms.len(), s.patterns.len() - forms_shared(&s));
        // Duplicates (case-insensitively) are gone.
        let keys: HashSet<Vec<u8>> = s
            .patterns
            .iter()
            .map(|p| p.bytes.to_ascii_lowercase())
            .collect();
        assert_eq!(keys.len(), s.pattern_count());
        assert!(s.pattern_count() < 400, "{}", s.pattern_count());
    }

    /// Patterns of different secrets may share a form.
    fn forms_shared(s: &SecretScanner) -> usize {
        let mut seen = HashSet::new();
        s.patterns.iter().filter(|p| !seen.insert(p.form)).count()
    }

    #[test]
    fn short_long_and_too_many_are_refused_without_the_value() {
        let e = SecretScanner::new(&[("pin", "1234567")]).unwrap_err();
        assert!(
            matches!(e, ScanError::TooShort { len: 7, min: 8, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("secret 'pin' is 7 bytes"), "{e}");
        assert!(!e.to_string().contains("1234567"), "{e}");

        let long = "k".repeat(MAX_SCAN_SECRET_LEN + 1);
        let e = SecretScanner::new(&[("key", long.as_str())]).unwrap_err();
        assert!(matches!(e, ScanError::TooLong { .. }), "{e}");
        assert!(!e.to_string().contains("kkkk"), "{e}");

        let values: Vec<String> = (0..200)
            .map(|i| format!("{i:04}{}", "v".repeat(4000)))
            .collect();
        let secrets: Vec<(String, &str)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("s{i}"), v.as_str()))
            .collect();
        let e = SecretScanner::new(&secrets).unwrap_err();
        assert!(matches!(e, ScanError::TooManyPatterns { .. }), "{e}");
        assert!(
            e.to_string().contains("grant fewer or shorter secrets"),
            "{e}"
        );
        assert!(!e.to_string().contains("vvvv"), "{e}");
    }

    #[test]
    fn debug_never_shows_a_value() {
        let s = scanner();
        let d = format!("{s:?}");
        assert!(d.contains("token") && d.contains("patterns"), "{d}");
        for (_, v) in ALL {
            assert!(!d.contains(v), "{d}");
            assert!(!d.contains(&hex::encode(v)), "{d}");
        }
        let m = s.find(TOKEN.as_bytes()).unwrap();
        assert!(!format!("{m:?}").contains(TOKEN));
        assert_eq!(m.form.to_string(), "plain of the value",);
    }

    #[test]
    fn scanner_is_shareable_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<SecretScanner>();
    }

    #[test]
    fn empty_scanner_finds_nothing() {
        let s = SecretScanner::new::<&str>(&[]).unwrap();
        assert!(s.is_empty());
        assert!(s.find(b"anything").is_none());
        assert_eq!(s.redact_str("anything"), "anything");
        assert!(!scanner().is_empty());
    }

    #[test]
    fn edges_of_the_haystack() {
        let s = scanner();
        assert_eq!(s.redact_str(TOKEN), REDACTED);
        assert_eq!(s.redact_str(""), "");
        let b = b64::STANDARD_NO_PAD.encode(format!("u:{TOKEN}"));
        assert_eq!(s.redact_str(&b), format!("{}{REDACTED}", &b[..2]));
    }

    /// About `len` bytes of SCIM-like JSON with no secrets in it.
    fn bench_json(len: usize) -> Vec<u8> {
        let mut out = b"{\"Resources\":[".to_vec();
        let mut i = 0u64;
        while out.len() < len {
            let user = format!(
                "{{\"id\":\"{:016x}\",\"userName\":\"user{i}@example.com\",\
                 \"name\":{{\"givenName\":\"Given{i}\",\"familyName\":\"Fämily-{i}\"}},\
                 \"emails\":[{{\"value\":\"user{i}@example.com\",\"primary\":true}}],\
                 \"externalId\":\"{}\",\"active\":true}},",
                i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                b64::STANDARD.encode(i.to_le_bytes())
            );
            out.extend_from_slice(user.as_bytes());
            i += 1;
        }
        out.extend_from_slice(b"{}]}");
        out
    }

    /// Figures: `cargo test --release -p provisio --lib secret_scan -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement; prints figures"]
    fn measure_throughput_and_construction() {
        use std::time::Instant;
        let values: Vec<String> = (0..10u64)
            .map(|i| {
                let bytes: Vec<u8> = (0..24u64)
                    .map(|j| (i.wrapping_mul(131).wrapping_add(j * 7919) % 251) as u8)
                    .collect();
                b64::URL_SAFE_NO_PAD.encode(bytes)
            })
            .collect();
        assert!(values.iter().all(|v| v.len() == 32));
        let secrets: Vec<(String, &str)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("secret{i}"), v.as_str()))
            .collect();

        let rounds = 20;
        let t = Instant::now();
        let mut s = SecretScanner::new(&secrets).unwrap();
        for _ in 1..rounds {
            s = SecretScanner::new(&secrets).unwrap();
        }
        let build = t.elapsed() / rounds;
        println!(
            "construction: 10 secrets of 32 chars -> {} patterns, {:?} automaton, {} KiB, {:?} per build",
            s.pattern_count(),
            s.automaton.as_ref().map(AhoCorasick::kind),
            s.memory_usage() / 1024,
            build
        );

        let hay = bench_json(1 << 20);
        let mb = hay.len() as f64 / 1e6;
        for (name, hay) in [
            ("clean JSON", hay.clone()),
            ("JSON with 100 secrets", {
                let mut h = hay.clone();
                for k in 0..100 {
                    let at = k * (h.len() / 101);
                    let v = values[k % 10].as_bytes();
                    h[at..at + v.len()].copy_from_slice(v);
                }
                h
            }),
        ] {
            let t = Instant::now();
            let mut found = 0;
            for _ in 0..rounds {
                found = s.find_all(&hay).len();
            }
            let find = t.elapsed().as_secs_f64() / f64::from(rounds);
            let t = Instant::now();
            let mut n = 0;
            for _ in 0..rounds {
                n = s.redact(&hay).1;
            }
            let redact = t.elapsed().as_secs_f64() / f64::from(rounds);
            println!(
                "{name}, {mb:.2} MB: find_all {:.0} MB/s ({found} found), redact {:.0} MB/s ({n} redacted)",
                mb / find,
                mb / redact
            );
        }

        // The same patterns as a DFA (more memory, faster scan).
        let t = Instant::now();
        let dfa = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .ascii_case_insensitive(true)
            .kind(Some(AhoCorasickKind::DFA))
            .build(s.patterns.iter().map(|p| &p.bytes[..]))
            .unwrap();
        let build = t.elapsed();
        let t = Instant::now();
        let mut found = 0;
        for _ in 0..rounds {
            found = dfa.find_iter(&hay).count();
        }
        let scan = t.elapsed().as_secs_f64() / f64::from(rounds);
        println!(
            "same patterns as a DFA: {} KiB, built in {build:?}, clean JSON {:.0} MB/s ({found} found)",
            dfa.memory_usage() / 1024,
            mb / scan
        );

        // The test secrets (non-ASCII, quoted) expand to more forms.
        let t = Instant::now();
        let all = scanner();
        println!(
            "construction: the 5 test secrets -> {} patterns, {} KiB, {:?}",
            all.pattern_count(),
            all.memory_usage() / 1024,
            t.elapsed()
        );

        // Large secrets: 10 PEM-sized values of 3 KiB (contiguous NFA).
        let big: Vec<String> = (0..10)
            .map(|i| {
                b64::STANDARD.encode(
                    (0..2300u32)
                        .map(|j| (j.wrapping_mul(2_654_435_761).wrapping_add(i) >> 13) as u8)
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        let big_secrets: Vec<(String, &str)> = big
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("key{i}"), v.as_str()))
            .collect();
        let t = Instant::now();
        let bs = SecretScanner::new(&big_secrets).unwrap();
        let build = t.elapsed();
        let t = Instant::now();
        let found = bs.find_all(&hay).len();
        let scan = t.elapsed().as_secs_f64();
        println!(
            "construction: 10 secrets of {} chars -> {} patterns, {:?}, {} KiB, {:?}; scan {:.0} MB/s ({found})",
            big[0].len(),
            bs.pattern_count(),
            bs.automaton.as_ref().map(AhoCorasick::kind),
            bs.memory_usage() / 1024,
            build,
            mb / scan
        );

        // Worst case: a periodic secret in a text made of its copies.
        let p = SecretScanner::new(&[("p", "a".repeat(32).as_str())]).unwrap();
        let aaa = vec![b'a'; 1 << 20];
        let t = Instant::now();
        let (_, n) = p.redact(&aaa);
        println!(
            "worst case: 32 x 'a' in 1 MiB of 'a': redact {:.0} MB/s ({n} span)",
            mb / t.elapsed().as_secs_f64()
        );
    }
}
