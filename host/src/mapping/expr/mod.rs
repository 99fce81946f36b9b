//! The expression language of attribute mappings, compatible with Microsoft
//! Entra ID's.
//!
//! An expression is VBA-like: `[attributeName]` reads a source attribute,
//! `"text"` is a string literal (`\"` and `\\` are escapes; a backslash before
//! any other character is kept, so regular expressions read naturally), numbers
//! and `true`/`false` are literals, and `Function(arg, arg, ...)` calls one of
//! the functions listed in [`FUNCTIONS`] (names are case-insensitive). An
//! argument slot may be left empty, which passes null:
//! `Switch([IsSoftDeleted], , "False", "True", "True", "False")`. Two operands
//! may be compared with `=` or `<>` (case-sensitive), as in Entra's
//! `IIF([country]="USA", [country], [department])`. An expression is at most
//! [`MAX_LEN`] characters long.
//!
//! How the parts fit:
//! - [`parse`] turns source text into an [`Expr`], checking syntax, function
//!   names, argument counts and literal regular expressions up front, so a
//!   mapping that compiles can only fail on its data. Errors are a
//!   [`ParseError`] with a 1-based column in characters.
//! - [`Expr::eval`] evaluates against an [`EvalContext`], which supplies the
//!   source object's attributes (looked up case-insensitively), the clock and
//!   new GUIDs, so evaluation is deterministic under test ([`MapContext`]).
//! - Values are [`Value`]s; null propagates like Entra's (most string
//!   functions return null for a null source), and
//!   `IgnoreFlowIfNullOrEmpty` yields [`EvalError::IgnoreFlow`] so the caller
//!   leaves the target attribute out entirely.
//! - Dates are read and written with .NET-style format strings (`yyyy-MM-dd`,
//!   `yyyyMMddHHmmss.fZ`, `M/d/yyyy h:mm:ss tt`); functions that return a date
//!   use Entra's `M/d/yyyy h:mm:ss tt` in UTC.
//!
//! Evaluation never panics and is bounded, whoever wrote the expression (the
//! operator, or a connector's default mapping): nesting is bounded by
//! [`MAX_DEPTH`] at parse time, arithmetic is checked, regular expressions
//! have a compiled size limit ([`REGEX_SIZE_LIMIT`]) and at most
//! [`MAX_REGEXES`] per expression, and every evaluation runs under
//! [`Limits`]: a size per value, a total per evaluation and a step budget
//! (see the `bounds` module). [`Expr::check_limits`] bounds the worst case
//! from the syntax tree alone, so a mapping whose growth is visible in its
//! text (`Replace` nested within `Replace`) is refused before it runs.

mod bounds;
mod dotnet_time;
mod functions;
pub(crate) use functions::edit_distance;
mod parse;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bounds;

use crate::model::{Attribute, Value};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fmt;

pub use bounds::{
    ASSUMED_ATTRIBUTE_BYTES, ITEM_BYTES, LimitError, Limits, MAX_REGEXES, REGEX_COMPILE_STEPS,
    REGEX_SIZE_LIMIT, StaticLimitError, WorstCase,
};
pub use functions::FUNCTIONS;
pub use parse::parse;

/// The longest expression accepted, in characters (Entra's limit).
pub const MAX_LEN: usize = 10_000;

/// The deepest nesting of function calls accepted (checked at parse time).
pub const MAX_DEPTH: usize = 32;

/// A parsed expression, ready to evaluate any number of times.
#[derive(Debug, Clone)]
pub struct Expr {
    root: Node,
    source: String,
}

/// One node of the syntax tree.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// `[name]`.
    Attr(String),
    /// A literal value (string, number, boolean, or null for an empty slot).
    Lit(Value),
    /// A function call; `column` is where its name starts.
    Call(Box<Call>),
    /// `lhs = rhs` or `lhs <> rhs`.
    Compare {
        /// `true` for `=`, `false` for `<>`.
        equal: bool,
        lhs: Box<Node>,
        rhs: Box<Node>,
    },
}

/// A function call node.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) func: functions::Func,
    pub(crate) args: Vec<Node>,
    pub(crate) column: usize,
    /// A regular expression compiled at parse time from a literal argument.
    pub(crate) regex: Option<regex::Regex>,
}

impl Expr {
    /// Evaluate against a source object.
    ///
    /// `Err(EvalError::IgnoreFlow)` means the target attribute must be left
    /// out (not cleared); other errors describe bad data.
    /// Runs under [`Limits::DEFAULT`].
    pub fn eval(&self, ctx: &dyn EvalContext) -> Result<Value, EvalError> {
        self.eval_with(ctx, Limits::DEFAULT)
    }

    /// Evaluate under the given limits.
    pub fn eval_with(&self, ctx: &dyn EvalContext, limits: Limits) -> Result<Value, EvalError> {
        let mut budget = bounds::Budget::new(limits);
        functions::eval(&self.root, ctx, &mut budget)
    }

    /// Evaluate under the given limits and also return the steps and bytes
    /// the evaluation used (for measurements).
    pub fn eval_metered(
        &self,
        ctx: &dyn EvalContext,
        limits: Limits,
    ) -> (Result<Value, EvalError>, (usize, usize)) {
        let mut budget = bounds::Budget::new(limits);
        let r = functions::eval(&self.root, ctx, &mut budget);
        (r, budget.used())
    }

    /// Bound the worst case of every evaluation from the syntax tree alone,
    /// for source attributes of at most [`ASSUMED_ATTRIBUTE_BYTES`].
    pub fn worst_case(&self) -> WorstCase {
        bounds::worst_case(&self.root, f64::INFINITY).0
    }

    /// Refuse the expression when its worst case ([`Expr::worst_case`])
    /// exceeds `limits`: some value can outgrow `max_value_bytes`, all of
    /// them together `max_total_bytes`, or its parts `max_steps`.
    pub fn check_limits(&self, limits: &Limits) -> Result<WorstCase, StaticLimitError> {
        bounds::check(&self.root, limits)
    }

    /// The attribute names the expression reads, in order of first use,
    /// without duplicates (compared case-insensitively).
    pub fn attributes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        walk(&self.root, &mut |n| {
            if let Node::Attr(name) = n
                && !out.iter().any(|o| o.eq_ignore_ascii_case(name))
            {
                out.push(name.clone());
            }
        });
        out
    }

    /// Whether the expression contains `Redact(...)`, so its result must be
    /// shown as `[REDACTED]` in logs.
    pub fn is_redacted(&self) -> bool {
        let mut found = false;
        walk(&self.root, &mut |n| {
            if let Node::Call(c) = n
                && c.func == functions::Func::Redact
            {
                found = true;
            }
        });
        found
    }

    /// The source text the expression was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// If the whole expression is a bare `[attribute]`, its name.
    pub fn as_attribute(&self) -> Option<&str> {
        match &self.root {
            Node::Attr(name) => Some(name),
            _ => None,
        }
    }

    /// If the whole expression is a single string literal, its text.
    pub fn as_string_literal(&self) -> Option<&str> {
        match &self.root {
            Node::Lit(Value::Text(s)) => Some(s),
            _ => None,
        }
    }
}

/// Two expressions are equal when their source text is.
impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn walk(node: &Node, f: &mut dyn FnMut(&Node)) {
    f(node);
    match node {
        Node::Call(c) => c.args.iter().for_each(|a| walk(a, f)),
        Node::Compare { lhs, rhs, .. } => {
            walk(lhs, f);
            walk(rhs, f);
        }
        Node::Attr(_) | Node::Lit(_) => {}
    }
}

/// A syntax error: where (1-based column, counted in characters) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ParseError {
    /// 1-based column in characters from the start of the expression.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl ParseError {
    /// Render the offending line of `source` with a caret under the column,
    /// followed by the message:
    ///
    /// ```text
    /// Mid([name], 1 2)
    ///               ^ column 15: expected ',' or ')' after argument 2 of Mid
    /// ```
    pub fn render(&self, source: &str) -> String {
        // Find the line holding the column (columns count every character,
        // newlines included) and the column within that line.
        let mut line_start = 0usize; // in chars
        let mut seen = 0usize;
        let mut line = "";
        let mut found = false;
        for l in source.split('\n') {
            let len = l.chars().count();
            if self.column <= seen + len + 1 {
                line = l;
                line_start = seen;
                found = true;
                break;
            }
            seen += len + 1;
        }
        if !found {
            line = source.rsplit('\n').next().unwrap_or("");
            line_start = source.chars().count() - line.chars().count();
        }
        let col_in_line = self.column.saturating_sub(line_start).max(1);
        // Tabs keep their width so the caret lines up.
        let pad: String = line
            .chars()
            .take(col_in_line - 1)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        format!("{line}\n{pad}^ {self}")
    }
}

/// Why an evaluation produced no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// `IgnoreFlowIfNullOrEmpty` met a null or empty value: leave the target
    /// attribute out of the operation entirely.
    #[error("IgnoreFlowIfNullOrEmpty: value is null or empty, attribute not sent")]
    IgnoreFlow,
    /// A function could not compute a value from its arguments.
    #[error("{function} (column {column}): {message}")]
    Function {
        /// The function's name as documented (e.g. `FormatDateTime`).
        function: String,
        /// Where the call starts in the expression.
        column: usize,
        /// What went wrong.
        message: String,
    },
    /// The evaluation reached one of its [`Limits`].
    #[error("{function} (column {column}): {error}")]
    Limit {
        /// The function (or `[attribute]`) that reached it.
        function: String,
        /// Where the call starts in the expression (0 when not a call).
        column: usize,
        /// Which limit, and the value reached.
        error: LimitError,
    },
}

/// What an expression can see while it is evaluated.
pub trait EvalContext {
    /// The source attribute called `name`, matched case-insensitively as
    /// Entra does; `None` (or `Some(Value::Null)`) when absent.
    fn attribute(&self, name: &str) -> Option<Value>;
    /// The current time, for `Now()` and date arithmetic.
    fn now(&self) -> DateTime<Utc>;
    /// A new GUID in its usual lowercase hyphenated form, for `Guid()`.
    fn new_guid(&self) -> String;
}

/// A simple [`EvalContext`] over a map of attributes with a fixed clock and
/// GUID, for tests and `provisio mapping test`.
#[derive(Debug, Clone)]
pub struct MapContext {
    /// Keyed by lowercased name; the value keeps the name as given.
    attributes: BTreeMap<String, (String, Value)>,
    now: DateTime<Utc>,
    guid: String,
}

impl Default for MapContext {
    fn default() -> Self {
        Self::new()
    }
}

impl MapContext {
    /// An empty context whose clock reads the moment it was made and whose
    /// `Guid()` is one fresh random v4 GUID.
    pub fn new() -> Self {
        MapContext {
            attributes: BTreeMap::new(),
            now: Utc::now(),
            guid: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// A context holding these attributes.
    pub fn from_attributes(attrs: &[Attribute]) -> Self {
        let mut ctx = Self::new();
        for a in attrs {
            ctx.insert(&a.name, a.value.clone());
        }
        ctx
    }

    /// Set an attribute (replacing one whose name differs only in case).
    pub fn insert(&mut self, name: &str, value: Value) {
        self.attributes
            .insert(name.to_lowercase(), (name.to_string(), value));
    }

    /// Builder form of [`MapContext::insert`].
    pub fn with(mut self, name: &str, value: Value) -> Self {
        self.insert(name, value);
        self
    }

    /// Fix the clock.
    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        self.now = now;
        self
    }

    /// Fix what `Guid()` returns.
    pub fn with_guid(mut self, guid: impl Into<String>) -> Self {
        self.guid = guid.into();
        self
    }
}

impl EvalContext for MapContext {
    fn attribute(&self, name: &str) -> Option<Value> {
        self.attributes
            .get(&name.to_lowercase())
            .map(|(_, v)| v.clone())
    }

    fn now(&self) -> DateTime<Utc> {
        self.now
    }

    fn new_guid(&self) -> String {
        self.guid.clone()
    }
}
