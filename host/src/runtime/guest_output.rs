//! Caps on what a guest hands the host as a call's result.
//!
//! Everything a connector returns is untrusted and goes on to the store, the
//! provisioning log, the terminal and the admin API. The rules live here, in
//! one place, and [`super::connection::call`] applies them to every result
//! before anything else sees it:
//!
//! - **messages** (every [`ConnectorError`] message, the `test-connection`
//!   text): at most [`GuestOutputLimits::max_message_bytes`], longer ones cut
//!   on a character boundary with a visible `…[N bytes cut]` marker. A long
//!   message is not wrong, only too long to keep.
//! - **object ids** (of returned objects and a conflict's existing id):
//!   non-empty, at most [`GuestOutputLimits::max_id_bytes`], and free of
//!   control characters, line and paragraph separators and bidirectional
//!   overrides. Ids are stored and printed; one that breaks the rule makes
//!   the whole result a [`GuestOutputError`] (a bad-output error for that
//!   call): it is never truncated, because a cut id would name another object.
//! - **attributes** of an object: at most
//!   [`GuestOutputLimits::max_attributes`], names at most
//!   [`GuestOutputLimits::max_attribute_name_bytes`] without control
//!   characters, text values at most [`GuestOutputLimits::max_value_bytes`],
//!   text lists at most [`GuestOutputLimits::max_list_items`] items, and the
//!   whole object at most [`GuestOutputLimits::max_object_bytes`].
//! - **lists** (a `list` page, `find` results): at most
//!   [`GuestOutputLimits::max_page_objects`] objects and
//!   [`GuestOutputLimits::max_page_bytes`] in all; a page's cursor follows the
//!   id rules with [`GuestOutputLimits::max_cursor_bytes`].
//!
//! - **secrets**: no id, cursor, attribute name or text value of a result,
//!   nor a conflict's existing id, may carry a value the connection holds
//!   (granted or derived, in any encoding its scanner knows). Such a result
//!   is refused whole ([`GuestOutputError::CarriesSecret`]): the host never
//!   stores, links or prints it, and the error names only where it was.
//!   A guest can hold a plaintext only if its bound origin handed one back
//!   in a form no scrubber knows; this keeps it out of the store anyway.
//!
//! Guest log records and the kv cache have their own caps where they are
//! handled ([`crate::capabilities::log::LogLimits`],
//! [`crate::capabilities::kv::KvLimits`]).
//!
//! The caps apply once the result is in host memory: what a guest can build
//! is already bounded by its memory limit (`limits.memory_mb`).

use super::bindings::provisio::connector::types as wit;
use crate::capabilities::log::truncate;
use crate::model::{Attribute, ConnectorError, Page, TargetObject, Value};

/// The caps (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestOutputLimits {
    /// Longest error or status message kept, bytes.
    pub max_message_bytes: usize,
    /// Longest object id, bytes.
    pub max_id_bytes: usize,
    /// Longest page cursor, bytes.
    pub max_cursor_bytes: usize,
    /// Most attributes per object.
    pub max_attributes: usize,
    /// Longest attribute name, bytes.
    pub max_attribute_name_bytes: usize,
    /// Largest text value (and text-list item), bytes.
    pub max_value_bytes: usize,
    /// Most items in a text list.
    pub max_list_items: usize,
    /// Largest object (id, names and values), bytes.
    pub max_object_bytes: usize,
    /// Most objects per page or `find` result.
    pub max_page_objects: usize,
    /// Largest page or `find` result, bytes.
    pub max_page_bytes: usize,
}

/// The caps every connection's results are held to.
pub const GUEST_OUTPUT_LIMITS: GuestOutputLimits = GuestOutputLimits {
    max_message_bytes: 4 * 1024,
    max_id_bytes: 1024,
    max_cursor_bytes: 4 * 1024,
    max_attributes: 512,
    max_attribute_name_bytes: 512,
    max_value_bytes: 64 * 1024,
    max_list_items: 1024,
    max_object_bytes: 1024 * 1024,
    max_page_objects: 1000,
    max_page_bytes: 16 * 1024 * 1024,
};

/// Why a guest's result was refused. The offending text itself is never
/// repeated: only its length and the position and code of a bad character.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestOutputError {
    /// A string or collection is over its cap.
    #[error("{what} is {found} {unit}, more than the limit of {limit} {unit}")]
    TooLarge {
        /// What (e.g. "object 3's id").
        what: String,
        /// The size found.
        found: usize,
        /// The cap.
        limit: usize,
        /// "bytes", "attributes", "objects", "items".
        unit: &'static str,
    },
    /// An id, cursor or attribute name is empty.
    #[error("{what} is empty")]
    Empty {
        /// What.
        what: String,
    },
    /// An id, cursor or attribute name holds a forbidden character.
    #[error(
        "{what} contains the character U+{code:04X} at byte {at}; \
         control characters, line separators and bidirectional overrides are not allowed"
    )]
    BadCharacter {
        /// What.
        what: String,
        /// Byte offset.
        at: usize,
        /// The code point.
        code: u32,
    },
    /// A string carries a secret value the connection holds.
    #[error(
        "{what} carries a secret value the connection holds; the host keeps no result \
         that does (the connector or its target is trying to store or print a credential)"
    )]
    CarriesSecret {
        /// Where (e.g. "the object's id").
        what: String,
    },
}

/// Characters an id, cursor or name may not contain.
fn forbidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn size(
    what: impl FnOnce() -> String,
    found: usize,
    limit: usize,
    unit: &'static str,
) -> Result<(), GuestOutputError> {
    if found > limit {
        return Err(GuestOutputError::TooLarge {
            what: what(),
            found,
            limit,
            unit,
        });
    }
    Ok(())
}

/// Check an identifier-like string: non-empty, short, no forbidden characters.
fn identifier(what: impl Fn() -> String, s: &str, limit: usize) -> Result<(), GuestOutputError> {
    if s.is_empty() {
        return Err(GuestOutputError::Empty { what: what() });
    }
    size(&what, s.len(), limit, "bytes")?;
    if let Some((at, c)) = s.char_indices().find(|&(_, c)| forbidden(c)) {
        return Err(GuestOutputError::BadCharacter {
            what: what(),
            at,
            code: u32::from(c),
        });
    }
    Ok(())
}

/// Check an object id.
pub fn check_id(
    what: impl Fn() -> String,
    id: &str,
    l: &GuestOutputLimits,
) -> Result<(), GuestOutputError> {
    identifier(what, id, l.max_id_bytes)
}

/// Check one object; returns its size in bytes.
pub fn check_object(
    what: &dyn Fn() -> String,
    o: &TargetObject,
    l: &GuestOutputLimits,
) -> Result<usize, GuestOutputError> {
    check_id(|| format!("{}'s id", what()), &o.id, l)?;
    size(
        || format!("{}'s attribute list", what()),
        o.attributes.len(),
        l.max_attributes,
        "attributes",
    )?;
    let mut bytes = o.id.len();
    for (i, a) in o.attributes.iter().enumerate() {
        bytes += check_attribute(&|| format!("{} attribute {}", what(), i + 1), a, l)?;
    }
    size(what, bytes, l.max_object_bytes, "bytes")?;
    Ok(bytes)
}

fn check_attribute(
    what: &dyn Fn() -> String,
    a: &Attribute,
    l: &GuestOutputLimits,
) -> Result<usize, GuestOutputError> {
    identifier(
        || format!("{}'s name", what()),
        &a.name,
        l.max_attribute_name_bytes,
    )?;
    let value = match &a.value {
        Value::Text(s) => {
            size(
                || format!("{}'s value", what()),
                s.len(),
                l.max_value_bytes,
                "bytes",
            )?;
            s.len()
        }
        Value::TextList(items) => {
            size(
                || format!("{}'s list", what()),
                items.len(),
                l.max_list_items,
                "items",
            )?;
            let mut n = 0;
            for (j, s) in items.iter().enumerate() {
                size(
                    || format!("{}'s item {}", what(), j + 1),
                    s.len(),
                    l.max_value_bytes,
                    "bytes",
                )?;
                n += s.len();
            }
            n
        }
        Value::Null | Value::Boolean(_) | Value::Integer(_) | Value::Number(_) => 8,
    };
    Ok(a.name.len() + value)
}

/// Check a list of objects (a page or `find`'s matches).
pub fn check_objects(
    what: &str,
    objects: &[TargetObject],
    l: &GuestOutputLimits,
) -> Result<(), GuestOutputError> {
    size(
        || what.to_string(),
        objects.len(),
        l.max_page_objects,
        "objects",
    )?;
    let mut bytes = 0usize;
    for (i, o) in objects.iter().enumerate() {
        bytes += check_object(&|| format!("object {} of {what}", i + 1), o, l)?;
        size(|| what.to_string(), bytes, l.max_page_bytes, "bytes")?;
    }
    Ok(())
}

/// Cap a connector error's message (cut with a marker) and check a
/// conflict's existing id.
pub fn cap_error(
    e: ConnectorError,
    l: &GuestOutputLimits,
) -> Result<ConnectorError, GuestOutputError> {
    let m = |s: String| truncate(&s, l.max_message_bytes);
    Ok(match e {
        ConnectorError::NotFound(s) => ConnectorError::NotFound(m(s)),
        ConnectorError::Conflict {
            message,
            existing_id,
        } => {
            if let Some(id) = &existing_id {
                check_id(|| "the conflict's existing id".to_string(), id, l)?;
            }
            ConnectorError::Conflict {
                message: m(message),
                existing_id,
            }
        }
        ConnectorError::RateLimited {
            message,
            retry_after,
        } => ConnectorError::RateLimited {
            message: m(message),
            retry_after,
        },
        ConnectorError::Unauthorized(s) => ConnectorError::Unauthorized(m(s)),
        ConnectorError::Forbidden(s) => ConnectorError::Forbidden(m(s)),
        ConnectorError::InvalidInput(s) => ConnectorError::InvalidInput(m(s)),
        ConnectorError::Transient(s) => ConnectorError::Transient(m(s)),
        ConnectorError::Unsupported(s) => ConnectorError::Unsupported(m(s)),
        ConnectorError::Denied(s) => ConnectorError::Denied(m(s)),
        ConnectorError::Other(s) => ConnectorError::Other(m(s)),
    })
}

/// A call result the caps apply to.
pub trait GuestOutput: Sized {
    /// The result as the host may keep it, or why it may not.
    fn checked(self, l: &GuestOutputLimits) -> Result<Self, GuestOutputError>;

    /// Where the result carries text for which `holds` is true (a secret
    /// value), if anywhere. Messages are not checked here: they are
    /// redacted, not refused.
    fn carried_secret(&self, _holds: &dyn Fn(&str) -> bool) -> Option<String> {
        None
    }
}

/// Where `o` carries a secret, if anywhere.
fn object_secret(
    what: &dyn Fn() -> String,
    o: &TargetObject,
    holds: &dyn Fn(&str) -> bool,
) -> Option<String> {
    if holds(&o.id) {
        return Some(format!("{}'s id", what()));
    }
    for (i, a) in o.attributes.iter().enumerate() {
        let at = || format!("{} attribute {}", what(), i + 1);
        if holds(&a.name) {
            return Some(format!("{}'s name", at()));
        }
        match &a.value {
            Value::Text(s) if holds(s) => return Some(format!("{}'s value", at())),
            Value::TextList(items) => {
                if let Some(j) = items.iter().position(|s| holds(s)) {
                    return Some(format!("{}'s item {}", at(), j + 1));
                }
            }
            _ => {}
        }
    }
    None
}

fn objects_secret(
    what: &str,
    objects: &[TargetObject],
    holds: &dyn Fn(&str) -> bool,
) -> Option<String> {
    objects
        .iter()
        .enumerate()
        .find_map(|(i, o)| object_secret(&|| format!("object {} of {what}", i + 1), o, holds))
}

/// Where a connector error carries a secret outside its (redacted)
/// message: a conflict's existing id.
pub fn error_secret(e: &ConnectorError, holds: &dyn Fn(&str) -> bool) -> Option<String> {
    match e {
        ConnectorError::Conflict {
            existing_id: Some(id),
            ..
        } if holds(id) => Some("the conflict's existing id".to_string()),
        _ => None,
    }
}

impl GuestOutput for () {
    fn checked(self, _: &GuestOutputLimits) -> Result<Self, GuestOutputError> {
        Ok(())
    }
}

/// A status message (`test-connection`): cut, never refused.
impl GuestOutput for String {
    fn checked(self, l: &GuestOutputLimits) -> Result<Self, GuestOutputError> {
        Ok(truncate(&self, l.max_message_bytes))
    }
}

impl GuestOutput for TargetObject {
    fn checked(self, l: &GuestOutputLimits) -> Result<Self, GuestOutputError> {
        check_object(&|| "the object".to_string(), &self, l)?;
        Ok(self)
    }

    fn carried_secret(&self, holds: &dyn Fn(&str) -> bool) -> Option<String> {
        object_secret(&|| "the object".to_string(), self, holds)
    }
}

impl GuestOutput for Vec<TargetObject> {
    fn checked(self, l: &GuestOutputLimits) -> Result<Self, GuestOutputError> {
        check_objects("the result", &self, l)?;
        Ok(self)
    }

    fn carried_secret(&self, holds: &dyn Fn(&str) -> bool) -> Option<String> {
        objects_secret("the result", self, holds)
    }
}

impl GuestOutput for Page {
    fn checked(self, l: &GuestOutputLimits) -> Result<Self, GuestOutputError> {
        check_objects("the page", &self.objects, l)?;
        if let Some(c) = &self.next_cursor {
            identifier(
                || "the page's next cursor".to_string(),
                c,
                l.max_cursor_bytes,
            )?;
        }
        Ok(self)
    }

    fn carried_secret(&self, holds: &dyn Fn(&str) -> bool) -> Option<String> {
        if let Some(c) = &self.next_cursor
            && holds(c)
        {
            return Some("the page's next cursor".to_string());
        }
        objects_secret("the page", &self.objects, holds)
    }
}

/// The manifest's own rules are checked where it is read (plugin loading).
impl GuestOutput for wit::Manifest {
    fn checked(self, _: &GuestOutputLimits) -> Result<Self, GuestOutputError> {
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: GuestOutputLimits = GUEST_OUTPUT_LIMITS;

    fn obj(id: &str) -> TargetObject {
        TargetObject {
            id: id.to_string(),
            attributes: vec![],
        }
    }

    #[test]
    fn ids_are_checked_for_length_and_characters() {
        assert!(obj("u-1").checked(&L).is_ok());
        assert!(obj(&"é".repeat(512)).checked(&L).is_ok());
        let e = obj(&"x".repeat(1025)).checked(&L).unwrap_err();
        assert!(
            e.to_string()
                .contains("1025 bytes, more than the limit of 1024"),
            "{e}"
        );
        for bad in [
            "a\nb",
            "a\u{1b}[31m",
            "a\u{7f}",
            "a\u{202e}b",
            "a\u{2028}",
            "\0",
        ] {
            let e = obj(bad).checked(&L).unwrap_err();
            assert!(
                matches!(e, GuestOutputError::BadCharacter { .. }),
                "{bad:?}: {e:?}"
            );
        }
        assert!(matches!(
            obj("").checked(&L),
            Err(GuestOutputError::Empty { .. })
        ));
    }

    #[test]
    fn messages_are_cut_with_a_marker() {
        let s = "m".repeat(20 * 1024 * 1024).checked(&L).unwrap();
        assert!(s.len() < 4200 && s.ends_with("bytes cut]"), "{}", s.len());
        let e = cap_error(ConnectorError::Other("e".repeat(10_000)), &L).unwrap();
        assert!(e.to_string().contains("bytes cut]"));
        let e = cap_error(
            ConnectorError::Conflict {
                message: "dup".into(),
                existing_id: Some("x\ny".into()),
            },
            &L,
        );
        assert!(e.is_err());
    }

    #[test]
    fn pages_are_capped_in_count_and_bytes() {
        let page = |n: usize, id_len: usize| Page {
            objects: (0..n).map(|i| obj(&format!("{i:0id_len$}"))).collect(),
            next_cursor: None,
            total: None,
        };
        assert!(page(1000, 8).checked(&L).is_ok());
        let e = page(1001, 8).checked(&L).unwrap_err();
        assert!(e.to_string().contains("1001 objects"), "{e}");
        let big = TargetObject {
            id: "a".into(),
            attributes: (0..20)
                .map(|i| Attribute {
                    name: format!("a{i}"),
                    value: Value::Text("v".repeat(60 * 1024)),
                })
                .collect(),
        };
        let e = big.checked(&L).unwrap_err();
        assert!(e.to_string().contains("the object is"), "{e}");
        let mut p = page(1, 4);
        p.next_cursor = Some("c\r\n".into());
        assert!(p.checked(&L).is_err());
    }
}
