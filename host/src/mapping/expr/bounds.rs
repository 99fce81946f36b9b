//! Bounds on evaluation: how big a value may get, how much one evaluation
//! may hold in all, and how many steps it may take; and the static
//! worst-case check that refuses an expression whose growth is visible in
//! its syntax tree before it ever runs.
//!
//! How the parts fit:
//! - [`Limits`] holds the run-time bounds ([`Limits::DEFAULT`] is what
//!   [`Expr::eval`](super::Expr::eval) uses). The nesting depth is bounded
//!   at parse time by [`MAX_DEPTH`](super::MAX_DEPTH) and the number of
//!   regular expressions per expression by [`MAX_REGEXES`].
//! - [`Budget`] is the meter of one evaluation: the evaluator charges a step
//!   for every node it evaluates and every list element a function
//!   processes, and charges every value it produces (and every source
//!   attribute it reads) against the total. Functions that can grow their
//!   input more than a small constant factor (`Replace`, `Join`, `Append`
//!   over lists, ...) compute the size of their result *before* building it,
//!   so an oversized result is refused without being allocated.
//! - A violation is a [`LimitError`] naming the limit, the value reached and
//!   the limit's value; the evaluator wraps it in
//!   [`EvalError::Limit`](super::EvalError::Limit) with the function and
//!   column, and the mapping layer adds the target attribute.
//! - [`worst_case`] walks a parsed expression and bounds the size of every
//!   value it can produce, assuming each source attribute is at most
//!   [`ASSUMED_ATTRIBUTE_BYTES`] long; [`check`] refuses the expression
//!   when that bound exceeds the limits, so a connector's default mapping
//!   of nested `Replace` calls is refused when the plugin loads.

use super::functions::Func;
use super::{Call, Node};
use crate::model::Value;

/// The most regular expressions one expression may contain (literal
/// patterns compiled at parse time); each may compile to at most
/// [`REGEX_SIZE_LIMIT`] bytes.
pub const MAX_REGEXES: usize = 16;

/// The compiled size limit of one regular expression, in bytes (the
/// `regex` crate's `size_limit`; its lazy DFA cache gets the same).
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// Steps charged for compiling a regular expression given by a computed
/// (not literal) pattern during an evaluation.
pub const REGEX_COMPILE_STEPS: usize = 1_000;

/// What a list element costs in the size accounting, on top of its text.
pub const ITEM_BYTES: usize = 24;

/// The source attribute size the static check assumes, in bytes. The
/// check is a load-time refusal of growth visible in the text (a constant
/// multiplied level after level); it assumes typical attribute sizes so
/// that it does not refuse ordinary mappings, and the run-time [`Limits`]
/// stay the guarantee for whatever the data holds.
pub const ASSUMED_ATTRIBUTE_BYTES: usize = 128;

/// Run-time bounds of one evaluation of one expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest value a function may produce, in bytes of text (a list
    /// counts its elements' text plus [`ITEM_BYTES`] per element).
    pub max_value_bytes: usize,
    /// The most bytes one evaluation may produce in all (every function
    /// result and every source attribute read counts, and none is given
    /// back), which also bounds what it holds at once.
    pub max_total_bytes: usize,
    /// The most steps one evaluation may take: one per node evaluated, one
    /// per list element a function processes, [`REGEX_COMPILE_STEPS`] per
    /// regular expression compiled during the evaluation.
    pub max_steps: usize,
}

impl Limits {
    /// 64 KiB per value, 1 MiB per evaluation, 10 000 steps.
    pub const DEFAULT: Limits = Limits {
        max_value_bytes: 64 * 1024,
        max_total_bytes: 1024 * 1024,
        max_steps: 10_000,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Which bound was exceeded, by how much.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// One value would be too large.
    #[error(
        "the value would be {reached} bytes, over the limit of {limit} bytes per value \
         (max_value_bytes); shorten the text this function builds"
    )]
    ValueBytes {
        /// The size the value would have (at least).
        reached: usize,
        /// The limit.
        limit: usize,
    },
    /// The evaluation would produce too much in all.
    #[error(
        "the evaluation would produce {reached} bytes in all, over its budget of {limit} bytes \
         (max_total_bytes)"
    )]
    TotalBytes {
        /// The total it would reach.
        reached: usize,
        /// The limit.
        limit: usize,
    },
    /// The evaluation would take too many steps.
    #[error(
        "the evaluation would take {reached} steps, over its budget of {limit} steps (max_steps)"
    )]
    Steps {
        /// The steps it would reach.
        reached: usize,
        /// The limit.
        limit: usize,
    },
}

/// The size of a value in the accounting of [`Limits`].
pub(crate) fn value_bytes(v: &Value) -> usize {
    match v {
        Value::Text(s) => s.len(),
        Value::TextList(l) => l.iter().fold(0usize, |n, s| {
            n.saturating_add(s.len()).saturating_add(ITEM_BYTES)
        }),
        Value::Null | Value::Boolean(_) | Value::Integer(_) | Value::Number(_) => 8,
    }
}

/// The meter of one evaluation.
#[derive(Debug)]
pub(crate) struct Budget {
    limits: Limits,
    steps: usize,
    total: usize,
}

impl Budget {
    pub(crate) fn new(limits: Limits) -> Self {
        Budget {
            limits,
            steps: 0,
            total: 0,
        }
    }

    /// The per-value limit.
    pub(crate) fn max_value(&self) -> usize {
        self.limits.max_value_bytes
    }

    /// Charge `n` steps.
    pub(crate) fn step(&mut self, n: usize) -> Result<(), LimitError> {
        let reached = self.steps.saturating_add(n);
        if reached > self.limits.max_steps {
            return Err(LimitError::Steps {
                reached,
                limit: self.limits.max_steps,
            });
        }
        self.steps = reached;
        Ok(())
    }

    /// Charge bytes against the total only (a source attribute read).
    pub(crate) fn hold(&mut self, bytes: usize) -> Result<(), LimitError> {
        let reached = self.total.saturating_add(bytes);
        if reached > self.limits.max_total_bytes {
            return Err(LimitError::TotalBytes {
                reached,
                limit: self.limits.max_total_bytes,
            });
        }
        self.total = reached;
        Ok(())
    }

    /// Check a value a function produced against the per-value limit and
    /// charge it against the total.
    pub(crate) fn produced(&mut self, v: &Value) -> Result<(), LimitError> {
        let bytes = value_bytes(v);
        fits(bytes, self.limits.max_value_bytes)?;
        self.hold(bytes)
    }

    /// Steps and bytes used so far.
    pub(crate) fn used(&self) -> (usize, usize) {
        (self.steps, self.total)
    }
}

/// `Ok` when a value of `bytes` fits the per-value `limit`.
pub(crate) fn fits(bytes: usize, limit: usize) -> Result<(), LimitError> {
    if bytes > limit {
        Err(LimitError::ValueBytes {
            reached: bytes,
            limit,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
thread_local! {
    /// The largest text a growing function built on this thread (tests
    /// check that a refused result was never built).
    pub(crate) static LARGEST_BUILT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Record that a function built `n` bytes (kept by tests only).
#[inline]
pub(crate) fn note_built(n: usize) {
    #[cfg(test)]
    LARGEST_BUILT.with(|c| c.set(c.get().max(n)));
    let _ = n;
}

/// The room left in one value being built, element by element for a list.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Room {
    /// Bytes already used by earlier elements.
    pub(crate) used: usize,
    /// The per-value limit.
    pub(crate) limit: usize,
}

impl Room {
    /// `Ok` when `more` bytes still fit.
    pub(crate) fn fits(&self, more: usize) -> Result<(), LimitError> {
        fits(self.used.saturating_add(more), self.limit)
    }
}

/// What the static check found: bounds on every value the expression can
/// produce, for source attributes of at most [`ASSUMED_ATTRIBUTE_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorstCase {
    /// The largest value any node can produce, in bytes.
    pub max_value_bytes: f64,
    /// The sum over all nodes, in bytes.
    pub total_bytes: f64,
    /// Nodes in the tree (each is one step).
    pub steps: usize,
    /// The deepest nesting of function calls.
    pub depth: usize,
    /// Literal regular expressions.
    pub regexes: usize,
}

/// Why the static check refused an expression.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StaticLimitError {
    /// Some value can grow past the per-value limit.
    #[error(
        "{function} (column {column}) can produce {reached} bytes from source attributes of \
         {ASSUMED_ATTRIBUTE_BYTES} bytes, over the limit of {limit} bytes per value \
         (max_value_bytes); nested or repeated growth (such as Replace within Replace) multiplies"
    )]
    ValueBytes {
        /// The function whose result is too large.
        function: &'static str,
        /// Where its call starts.
        column: usize,
        /// The bound reached (saturated at `u64::MAX`).
        reached: u64,
        /// The limit.
        limit: usize,
    },
    /// All values together can exceed the total budget.
    #[error(
        "the expression can produce {reached} bytes in all from source attributes of \
         {ASSUMED_ATTRIBUTE_BYTES} bytes, over the budget of {limit} bytes per evaluation \
         (max_total_bytes)"
    )]
    TotalBytes {
        /// The bound reached (saturated).
        reached: u64,
        /// The limit.
        limit: usize,
    },
    /// More nodes than steps.
    #[error("the expression has {reached} parts, over the budget of {limit} steps (max_steps)")]
    Steps {
        /// Nodes.
        reached: usize,
        /// The limit.
        limit: usize,
    },
}

/// Bound an expression's values (see [`WorstCase`]); also the first call
/// (innermost, in evaluation order) whose bound exceeds `value_limit`.
pub(crate) fn worst_case(
    root: &Node,
    value_limit: f64,
) -> (WorstCase, Option<(&'static str, usize, f64)>) {
    let mut w = Walk {
        total: 0.0,
        steps: 0,
        regexes: 0,
        largest: 0.0,
        value_limit,
        first_over: None,
    };
    let (root_bound, depth) = w.node(root);
    (
        WorstCase {
            max_value_bytes: w.largest.max(root_bound.bytes),
            total_bytes: w.total,
            steps: w.steps,
            depth,
            regexes: w.regexes,
        },
        w.first_over,
    )
}

/// Refuse an expression whose worst case exceeds `limits`, naming the
/// first call that would reach the per-value limit.
pub(crate) fn check(root: &Node, limits: &Limits) -> Result<WorstCase, StaticLimitError> {
    let (wc, first_over) = worst_case(root, limits.max_value_bytes as f64);
    if let Some((function, column, bytes)) = first_over {
        return Err(StaticLimitError::ValueBytes {
            function,
            column,
            reached: saturate(bytes),
            limit: limits.max_value_bytes,
        });
    }
    if wc.total_bytes > limits.max_total_bytes as f64 {
        return Err(StaticLimitError::TotalBytes {
            reached: saturate(wc.total_bytes),
            limit: limits.max_total_bytes,
        });
    }
    if wc.steps > limits.max_steps {
        return Err(StaticLimitError::Steps {
            reached: wc.steps,
            limit: limits.max_steps,
        });
    }
    Ok(wc)
}

fn saturate(x: f64) -> u64 {
    if x.is_finite() && x < u64::MAX as f64 {
        x.ceil() as u64
    } else {
        u64::MAX
    }
}

/// A bound on one node's value: its bytes (as the accounting counts them)
/// and how many list elements it can have.
#[derive(Debug, Clone, Copy)]
struct Bound {
    bytes: f64,
    items: f64,
}

const SCALAR: Bound = Bound {
    bytes: 8.0,
    items: 1.0,
};

fn text_bound(bytes: f64) -> Bound {
    Bound { bytes, items: 1.0 }
}

struct Walk {
    total: f64,
    steps: usize,
    regexes: usize,
    /// The largest result bound of any call.
    largest: f64,
    /// The per-value limit to look for.
    value_limit: f64,
    /// The first call (in evaluation order) whose bound exceeds it.
    first_over: Option<(&'static str, usize, f64)>,
}

/// The length of a literal text argument, if it is one.
fn lit_len(n: Option<&Node>) -> Option<f64> {
    match n {
        Some(Node::Lit(Value::Text(s))) => Some(s.len() as f64),
        Some(Node::Lit(Value::Null)) | None => Some(0.0),
        _ => None,
    }
}

fn is_null_lit(n: Option<&Node>) -> bool {
    matches!(n, Some(Node::Lit(Value::Null)) | None)
}

impl Walk {
    fn node(&mut self, node: &Node) -> (Bound, usize) {
        self.steps += 1;
        let (b, depth) = match node {
            Node::Attr(_) => (
                Bound {
                    bytes: ASSUMED_ATTRIBUTE_BYTES as f64,
                    items: ASSUMED_ATTRIBUTE_BYTES as f64 / ITEM_BYTES as f64 + 1.0,
                },
                0,
            ),
            Node::Lit(v) => (text_bound(value_bytes(v) as f64), 0),
            Node::Compare { lhs, rhs, .. } => {
                let (_, d1) = self.node(lhs);
                let (_, d2) = self.node(rhs);
                (SCALAR, d1.max(d2))
            }
            Node::Call(call) => {
                let mut args = Vec::with_capacity(call.args.len());
                let mut depth = 0;
                for a in &call.args {
                    let (b, d) = self.node(a);
                    args.push(b);
                    depth = depth.max(d);
                }
                if call.regex.is_some() {
                    self.regexes += 1;
                }
                let b = call_bound(call, &args);
                self.largest = self.largest.max(b.bytes);
                if self.first_over.is_none() && b.bytes > self.value_limit {
                    let name = super::functions::name_of(call.func);
                    self.first_over = Some((name, call.column, b.bytes));
                }
                (b, depth + 1)
            }
        };
        self.total += b.bytes;
        (b, depth)
    }
}

/// Elementwise over a list source: `per(element bytes)` summed over the
/// elements, where each element's bound is affine in its size.
fn elementwise(src: Bound, per_byte: f64, per_item: f64) -> Bound {
    Bound {
        bytes: src.bytes * per_byte + src.items * (per_item + ITEM_BYTES as f64),
        items: src.items,
    }
}

fn call_bound(call: &Call, a: &[Bound]) -> Bound {
    let arg = |i: usize| {
        a.get(i).copied().unwrap_or(Bound {
            bytes: 0.0,
            items: 0.0,
        })
    };
    let max_of = |idx: &mut dyn Iterator<Item = usize>| {
        idx.map(arg).fold(
            Bound {
                bytes: 0.0,
                items: 0.0,
            },
            |m, b| Bound {
                bytes: m.bytes.max(b.bytes),
                items: m.items.max(b.items),
            },
        )
    };
    let src = arg(0);
    match call.func {
        Func::Append => elementwise(src, 1.0, arg(1).bytes),
        Func::Join => {
            let mut bytes = 0.0;
            let mut items = 0.0;
            for b in a.iter().skip(1) {
                bytes += b.bytes;
                items += b.items;
            }
            text_bound(bytes + arg(0).bytes * items)
        }
        Func::Replace => replace_bound(call, a),
        Func::Split => Bound {
            bytes: src.bytes + (src.bytes + 1.0) * ITEM_BYTES as f64,
            items: src.bytes + 1.0,
        },
        // Case mapping and normalisation grow UTF-8 at most threefold.
        Func::ToLower | Func::ToUpper | Func::PCase | Func::NormalizeDiacritics => {
            elementwise(src, 3.0, 0.0)
        }
        // UTF-16 doubles at most, base64 adds a third.
        Func::ConvertToBase64 => text_bound(src.bytes * 8.0 / 3.0 + 4.0),
        Func::ConvertToUtf8Hex => text_bound(src.bytes * 2.0),
        // A .NET format specifier writes at most six characters per
        // character of the format ("K" is "+hh:mm").
        Func::FormatDateTime => {
            let format = if call.args.len() == 4 { arg(3) } else { arg(2) };
            elementwise(src, 0.0, format.bytes * 6.0 + 40.0)
        }
        Func::CDate | Func::DateAdd | Func::DateFromNum | Func::Now => text_bound(40.0),
        Func::Guid => text_bound(36.0),
        Func::RandomString => text_bound(256.0),
        Func::Iif => max_of(&mut (1..=2)),
        Func::Switch => max_of(&mut std::iter::once(1).chain((3..a.len()).step_by(2))),
        Func::Coalesce | Func::SelectUniqueValue => max_of(&mut (0..a.len())),
        Func::IgnoreFlowIfNullOrEmpty
        | Func::Redact
        | Func::CStr
        | Func::Left
        | Func::Mid
        | Func::Word
        | Func::Item
        | Func::StripSpaces
        | Func::RemoveDuplicates
        | Func::SingleAppRoleAssignment => src,
        Func::BitAnd
        | Func::CBool
        | Func::Count
        | Func::DateDiff
        | Func::InStr
        | Func::IsNull
        | Func::IsNullOrEmpty
        | Func::IsPresent
        | Func::IsString
        | Func::Not
        | Func::NumFromDate => SCALAR,
    }
}

/// `Replace(source, oldValue, regexPattern, regexGroupName,
/// replacementValue, replacementAttributeName, template)`.
fn replace_bound(call: &Call, a: &[Bound]) -> Bound {
    let arg = |i: usize| a.get(i).map_or(0.0, |b| b.bytes);
    let src = a.first().copied().unwrap_or(SCALAR);
    let new = arg(4).max(arg(5));
    if !is_null_lit(call.args.get(1)) {
        // A literal oldValue: at most len(s)/len(old) matches. A computed
        // one is at least one character (empty is an error).
        let old = lit_len(call.args.get(1)).unwrap_or(1.0).max(1.0);
        if !is_null_lit(call.args.get(6)) {
            // The template's occurrences of old become the source.
            let t = arg(6);
            return Bound {
                bytes: src.items * (t + ITEM_BYTES as f64) + (t / old) * src.bytes,
                items: src.items,
            };
        }
        return elementwise(src, (new / old).max(1.0), 0.0);
    }
    // A regular expression: at most len(s)+1 matches, each replaced by the
    // replacement's literal text plus, per `$group` reference, at most the
    // match's length (the whole replacement when it is computed).
    let slot = if is_null_lit(call.args.get(4)) { 5 } else { 4 };
    let grouped = !is_null_lit(call.args.get(3));
    let (lit, refs) = match call.args.get(slot) {
        // With a group name the replacement is inserted as it is.
        Some(Node::Lit(Value::Text(r))) if grouped => (r.len() as f64, 0.0),
        Some(Node::Lit(Value::Text(r))) => {
            let (lit, refs) = super::functions::replacement_shape(r);
            (lit as f64, refs as f64)
        }
        Some(Node::Lit(_)) | None => (0.0, 0.0),
        _ if grouped => (new, 0.0),
        _ => (new, new / 2.0),
    };
    Bound {
        bytes: src.bytes * (1.0 + lit + refs) + src.items * (lit + ITEM_BYTES as f64),
        items: src.items,
    }
}
