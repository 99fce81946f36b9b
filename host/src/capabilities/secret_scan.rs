//! STUB (to be replaced by the scanner branch): raw and JSON-escaped forms only.

use aho_corasick::{AhoCorasick, MatchKind};

/// Shortest secret the scanner accepts.
pub const MIN_LEN: usize = 4;

/// Why a scanner could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// A secret is too short.
    #[error("secret '{0}' is shorter than {MIN_LEN} characters")]
    TooShort(String),
    /// The automaton could not be built.
    #[error("cannot build the secret scanner: {0}")]
    Build(String),
}

/// A match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// Label of the secret.
    pub label: String,
    /// Span.
    pub start: usize,
    /// Span end.
    pub end: usize,
}

/// Scanner.
#[derive(Debug, Clone, Default)]
pub struct SecretScanner {
    ac: Option<AhoCorasick>,
    labels: Vec<String>,
}

impl SecretScanner {
    /// Build.
    pub fn new(secrets: &[(String, &str)]) -> Result<Self, ScanError> {
        let mut pats = Vec::new();
        let mut labels = Vec::new();
        for (label, v) in secrets {
            if v.len() < MIN_LEN {
                return Err(ScanError::TooShort(label.clone()));
            }
            pats.push(v.as_bytes().to_vec());
            labels.push(label.clone());
            let j = serde_json::to_string(v).unwrap_or_default();
            let j = j.trim_matches('"');
            if j != *v {
                pats.push(j.as_bytes().to_vec());
                labels.push(label.clone());
            }
        }
        if pats.is_empty() {
            return Ok(SecretScanner::default());
        }
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&pats)
            .map_err(|e| ScanError::Build(e.to_string()))?;
        Ok(SecretScanner {
            ac: Some(ac),
            labels,
        })
    }
    /// Whether nothing is scanned for.
    pub fn is_empty(&self) -> bool {
        self.ac.is_none()
    }
    /// First match.
    pub fn find(&self, hay: &[u8]) -> Option<Match> {
        let m = self.ac.as_ref()?.find(hay)?;
        Some(Match {
            label: self.labels[m.pattern().as_usize()].clone(),
            start: m.start(),
            end: m.end(),
        })
    }
    /// Redact.
    pub fn redact(&self, hay: &[u8]) -> (Vec<u8>, usize) {
        let Some(ac) = &self.ac else {
            return (hay.to_vec(), 0);
        };
        let mut out = Vec::with_capacity(hay.len());
        let mut n = 0;
        let mut last = 0;
        for m in ac.find_iter(hay) {
            out.extend_from_slice(&hay[last..m.start()]);
            out.extend_from_slice(b"[REDACTED]");
            last = m.end();
            n += 1;
        }
        out.extend_from_slice(&hay[last..]);
        (out, n)
    }
    /// Redact text.
    pub fn redact_str(&self, s: &str) -> String {
        String::from_utf8_lossy(&self.redact(s.as_bytes()).0).into_owned()
    }
}
