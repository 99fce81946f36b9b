//! The functions of the expression language and the evaluator.
//!
//! Arguments are evaluated eagerly except for the functions that choose
//! between them (`IIF`, `Switch`, `Coalesce`, `SelectUniqueValue`), so a branch
//! not taken cannot fail. Type conversions follow .NET where Entra shows
//! them: booleans read as `True`/`False`, numbers without a trailing `.0`.
//! Text functions given a list (such as `ToLower([proxyAddresses])`) apply
//! to each value; functions that need one value refuse a list of several.
//!
//! Deliberate differences from Entra's documentation, all so that nothing
//! empty is sent by accident: `Left` and `Word` return null (not an empty
//! string) for a null source or a missing word; `Join` of nothing but nulls
//! is null; `StripSpaces` removes all whitespace, not only spaces; `Switch`
//! matches a null source against an empty key slot. `AppRoleAssignmentsComplex`
//! is not offered (its complex role objects do not fit flat attributes).

use super::bounds::{self, Budget, LimitError, Room};
use super::dotnet_time::{self, ENTRA_FORMAT, Stamp, Zone};
use super::{Call, EvalContext, EvalError, Node};
use crate::model::Value;
use base64::Engine as _;
use chrono::{Datelike, Months, NaiveDateTime, TimeDelta};
use rand::Rng as _;
use rand::seq::SliceRandom as _;
use unicode_normalization::UnicodeNormalization as _;

/// The functions, as they are named in expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Append,
    BitAnd,
    CBool,
    CDate,
    Coalesce,
    ConvertToBase64,
    ConvertToUtf8Hex,
    Count,
    CStr,
    DateAdd,
    DateDiff,
    DateFromNum,
    FormatDateTime,
    Guid,
    IgnoreFlowIfNullOrEmpty,
    Iif,
    InStr,
    IsNull,
    IsNullOrEmpty,
    IsPresent,
    IsString,
    Item,
    Join,
    Left,
    Mid,
    NormalizeDiacritics,
    Not,
    Now,
    NumFromDate,
    PCase,
    RandomString,
    Redact,
    RemoveDuplicates,
    Replace,
    SelectUniqueValue,
    SingleAppRoleAssignment,
    Split,
    StripSpaces,
    Switch,
    ToLower,
    ToUpper,
    Word,
}

/// One function of the expression language: its name, parameters and what
/// it does.
#[derive(Debug, Clone, Copy)]
pub struct FunctionSpec {
    /// The name as documented; calls match it case-insensitively.
    pub name: &'static str,
    /// The parameter list, e.g. `source, start, length`; `[x]` is optional
    /// and `...` repeats.
    pub params: &'static str,
    /// One line on what it returns.
    pub summary: &'static str,
    pub(crate) func: Func,
    min: usize,
    max: Option<usize>,
}

const fn spec(
    func: Func,
    name: &'static str,
    params: &'static str,
    min: usize,
    max: Option<usize>,
    summary: &'static str,
) -> FunctionSpec {
    FunctionSpec {
        name,
        params,
        summary,
        func,
        min,
        max,
    }
}

/// Every function, alphabetically.
pub const FUNCTIONS: &[FunctionSpec] = &[
    spec(
        Func::Append,
        "Append",
        "source, suffix",
        2,
        Some(2),
        "source followed by suffix",
    ),
    spec(
        Func::BitAnd,
        "BitAnd",
        "value1, value2",
        2,
        Some(2),
        "bitwise AND of two integers",
    ),
    spec(
        Func::CBool,
        "CBool",
        "expression",
        1,
        Some(1),
        "True for true, \"True\" or a non-zero number, else False",
    ),
    spec(
        Func::CDate,
        "CDate",
        "expression",
        1,
        Some(1),
        "a date read in any common form, as M/d/yyyy h:mm:ss tt in UTC",
    ),
    spec(
        Func::Coalesce,
        "Coalesce",
        "source1, source2, ..., defaultValue",
        1,
        None,
        "the first argument that is not null",
    ),
    spec(
        Func::ConvertToBase64,
        "ConvertToBase64",
        "source",
        1,
        Some(1),
        "Base64 of the UTF-16LE bytes of source",
    ),
    spec(
        Func::ConvertToUtf8Hex,
        "ConvertToUTF8Hex",
        "source",
        1,
        Some(1),
        "upper-case hex of the UTF-8 bytes of source",
    ),
    spec(
        Func::Count,
        "Count",
        "attribute",
        1,
        Some(1),
        "the number of values (0 for null)",
    ),
    spec(Func::CStr, "CStr", "value", 1, Some(1), "the value as text"),
    spec(
        Func::DateAdd,
        "DateAdd",
        "interval, value, dateTime",
        3,
        Some(3),
        "dateTime plus value intervals (yyyy q m y d w ww h n s)",
    ),
    spec(
        Func::DateDiff,
        "DateDiff",
        "interval, date1, date2",
        3,
        Some(3),
        "the number of intervals from date1 to date2",
    ),
    spec(
        Func::DateFromNum,
        "DateFromNum",
        "value",
        1,
        Some(1),
        "an Active Directory FILETIME number as a date",
    ),
    spec(
        Func::FormatDateTime,
        "FormatDateTime",
        "source, [dateTimeStyles], inputFormat, outputFormat",
        3,
        Some(4),
        "source read with inputFormat and written with outputFormat (.NET formats)",
    ),
    spec(Func::Guid, "Guid", "", 0, Some(0), "a new random GUID"),
    spec(
        Func::IgnoreFlowIfNullOrEmpty,
        "IgnoreFlowIfNullOrEmpty",
        "expression",
        1,
        Some(1),
        "expression, or leave the attribute out when it is null or empty",
    ),
    spec(
        Func::Iif,
        "IIF",
        "condition, valueIfTrue, valueIfFalse",
        3,
        Some(3),
        "valueIfTrue when condition holds, else valueIfFalse",
    ),
    spec(
        Func::InStr,
        "InStr",
        "value1, value2, [start], [compareType]",
        2,
        Some(4),
        "1-based position of value2 in value1, 0 when absent",
    ),
    spec(
        Func::IsNull,
        "IsNull",
        "expression",
        1,
        Some(1),
        "True when null",
    ),
    spec(
        Func::IsNullOrEmpty,
        "IsNullOrEmpty",
        "expression",
        1,
        Some(1),
        "True when null, empty text or an empty list",
    ),
    spec(
        Func::IsPresent,
        "IsPresent",
        "expression",
        1,
        Some(1),
        "Not(IsNullOrEmpty(expression))",
    ),
    spec(
        Func::IsString,
        "IsString",
        "expression",
        1,
        Some(1),
        "True when the value is text",
    ),
    spec(
        Func::Item,
        "Item",
        "attribute, index",
        2,
        Some(2),
        "the value at a 1-based index of a multi-valued attribute",
    ),
    spec(
        Func::Join,
        "Join",
        "separator, source1, source2, ...",
        2,
        None,
        "all values (lists flattened, nulls skipped) joined with separator",
    ),
    spec(
        Func::Left,
        "Left",
        "string, numChars",
        2,
        Some(2),
        "the first numChars characters",
    ),
    spec(
        Func::Mid,
        "Mid",
        "source, start, length",
        3,
        Some(3),
        "length characters from the 1-based start",
    ),
    spec(
        Func::NormalizeDiacritics,
        "NormalizeDiacritics",
        "source",
        1,
        Some(1),
        "source with diacritics removed (Zoë to Zoe)",
    ),
    spec(
        Func::Not,
        "Not",
        "source",
        1,
        Some(1),
        "False when source is true, else True",
    ),
    spec(
        Func::Now,
        "Now",
        "",
        0,
        Some(0),
        "the current time as M/d/yyyy h:mm:ss tt in UTC",
    ),
    spec(
        Func::NumFromDate,
        "NumFromDate",
        "value",
        1,
        Some(1),
        "a date as an Active Directory FILETIME number",
    ),
    spec(
        Func::PCase,
        "PCase",
        "source, [wordSeparators]",
        1,
        Some(2),
        "each word capitalised, the rest lower case",
    ),
    spec(
        Func::RandomString,
        "RandomString",
        "length, [minimumNumbers], [minimumSpecialCharacters], [minimumCapital], [minimumLowerCase], [charactersToAvoid]",
        1,
        Some(6),
        "a random string meeting the minimums",
    ),
    spec(
        Func::Redact,
        "Redact",
        "source",
        1,
        Some(1),
        "source, shown as [REDACTED] in logs",
    ),
    spec(
        Func::RemoveDuplicates,
        "RemoveDuplicates",
        "attribute",
        1,
        Some(1),
        "a list without repeated values",
    ),
    spec(
        Func::Replace,
        "Replace",
        "source, oldValue, regexPattern, regexGroupName, replacementValue, replacementAttributeName, template",
        7,
        Some(7),
        "source with text or regular-expression matches replaced",
    ),
    spec(
        Func::SelectUniqueValue,
        "SelectUniqueValue",
        "uniqueValueRule1, uniqueValueRule2, ...",
        1,
        None,
        "the first rule that yields a non-empty value",
    ),
    spec(
        Func::SingleAppRoleAssignment,
        "SingleAppRoleAssignment",
        "[appRoleAssignments]",
        1,
        Some(1),
        "the one app role assigned; an error when there are several",
    ),
    spec(
        Func::Split,
        "Split",
        "source, delimiter",
        2,
        Some(2),
        "a list of the parts of source",
    ),
    spec(
        Func::StripSpaces,
        "StripSpaces",
        "source",
        1,
        Some(1),
        "source without whitespace",
    ),
    spec(
        Func::Switch,
        "Switch",
        "source, defaultValue, key1, value1, key2, value2, ...",
        4,
        None,
        "the value whose key equals source (case-sensitive), else defaultValue",
    ),
    spec(
        Func::ToLower,
        "ToLower",
        "source, [culture]",
        1,
        Some(2),
        "source in lower case",
    ),
    spec(
        Func::ToUpper,
        "ToUpper",
        "source, [culture]",
        1,
        Some(2),
        "source in upper case",
    ),
    spec(
        Func::Word,
        "Word",
        "string, wordNumber, delimiters",
        3,
        Some(3),
        "the wordNumber-th (1-based) word, words split at any of delimiters",
    ),
];

/// Entra functions that are deliberately absent, with the reason.
const UNSUPPORTED: &[(&str, &str)] = &[(
    "AppRoleAssignmentsComplex",
    "AppRoleAssignmentsComplex is not supported: it produces a list of complex SCIM role objects, \
     which flat attributes cannot carry; use SingleAppRoleAssignment([appRoleAssignments]) or \
     [appRoleAssignments] (a list of role names)",
)];

/// The function called `name` (case-insensitive).
pub(crate) fn lookup(name: &str) -> Option<&'static FunctionSpec> {
    FUNCTIONS.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

/// The message for an unknown function, with a suggestion when one is close.
pub(crate) fn unknown_function_message(name: &str) -> String {
    if let Some((_, why)) = UNSUPPORTED
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
    {
        return (*why).to_string();
    }
    let lower = name.to_lowercase();
    let best = FUNCTIONS
        .iter()
        .map(|s| (edit_distance(&lower, &s.name.to_lowercase()), s.name))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, suggestion)) if d <= 2 => {
            format!("unknown function '{name}'; did you mean {suggestion}?")
        }
        _ => format!("unknown function '{name}'"),
    }
}

/// Levenshtein distance between two strings, in characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            let del = prev[j + 1] + 1;
            let ins = cur[j] + 1;
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev[b.len()]
}

impl FunctionSpec {
    /// `Name(params)`.
    pub fn signature(&self) -> String {
        format!("{}({})", self.name, self.params)
    }

    /// Check an argument count, describing the expected arity on failure.
    pub(crate) fn check_arity(&self, n: usize) -> Result<(), String> {
        let plural = |k: usize| if k == 1 { "argument" } else { "arguments" };
        if self.func == Func::Switch {
            if n >= 4 && n.is_multiple_of(2) {
                return Ok(());
            }
            return Err(format!(
                "Switch takes source, defaultValue and key/value pairs (an even number of \
                 arguments, at least 4): {}; found {n}",
                self.signature()
            ));
        }
        let ok = n >= self.min && self.max.is_none_or(|m| n <= m);
        if ok {
            return Ok(());
        }
        let expected = match self.max {
            Some(m) if m == self.min => format!("{m} {}", plural(m)),
            Some(m) => format!("{} to {m} arguments", self.min),
            None => format!("at least {} {}", self.min, plural(self.min)),
        };
        Err(format!(
            "{} takes {expected}: {}; found {n}",
            self.name,
            self.signature()
        ))
    }
}

/// The documented name of a function.
pub(crate) fn name_of(func: Func) -> &'static str {
    spec_of(func).name
}

fn spec_of(func: Func) -> &'static FunctionSpec {
    // Every Func has a row in FUNCTIONS (checked by a test); the fallback
    // only keeps this total.
    FUNCTIONS
        .iter()
        .find(|s| s.func == func)
        .unwrap_or(&FUNCTIONS[0])
}

/// Compile a regular expression with size limits, describing errors in one
/// line.
pub(crate) fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(bounds::REGEX_SIZE_LIMIT)
        .dfa_size_limit(bounds::REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::Syntax(s) => {
                let detail = s
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("invalid syntax")
                    .trim()
                    .trim_start_matches("error: ")
                    .to_string();
                format!("invalid regular expression '{pattern}': {detail}")
            }
            regex::Error::CompiledTooBig(limit) => format!(
                "regular expression '{pattern}' compiles to more than {limit} bytes \
                 (the regular expression size limit); simplify it (fewer or smaller repetitions)"
            ),
            other => format!("invalid regular expression '{pattern}': {other}"),
        })
}

static NULL: Value = Value::Null;

/// Why a function failed: bad data, or a limit.
#[derive(Debug)]
pub(crate) enum Fail {
    /// A message about the data.
    Msg(String),
    /// A bound of [`bounds::Limits`] was reached.
    Limit(LimitError),
}

impl From<String> for Fail {
    fn from(m: String) -> Self {
        Fail::Msg(m)
    }
}

impl From<LimitError> for Fail {
    fn from(e: LimitError) -> Self {
        Fail::Limit(e)
    }
}

/// Evaluate one node, charging `budget`.
pub(crate) fn eval(
    node: &Node,
    ctx: &dyn EvalContext,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    let at_node = |error: LimitError| {
        let function = match node {
            Node::Call(c) => spec_of(c.func).name.to_string(),
            Node::Attr(name) => format!("[{name}]"),
            Node::Lit(_) => "a literal".to_string(),
            Node::Compare { .. } => "a comparison".to_string(),
        };
        let column = match node {
            Node::Call(c) => c.column,
            _ => 0,
        };
        EvalError::Limit {
            function,
            column,
            error,
        }
    };
    budget.step(1).map_err(at_node)?;
    match node {
        Node::Attr(name) => {
            let v = ctx.attribute(name).unwrap_or(Value::Null);
            budget.hold(bounds::value_bytes(&v)).map_err(at_node)?;
            Ok(v)
        }
        Node::Lit(v) => Ok(v.clone()),
        Node::Compare { equal, lhs, rhs } => {
            let l = eval(lhs, ctx, budget)?;
            let r = eval(rhs, ctx, budget)?;
            Ok(Value::Boolean(
                (compare_key(&l) == compare_key(&r)) == *equal,
            ))
        }
        Node::Call(call) => eval_call(call, ctx, budget),
    }
}

fn eval_call(call: &Call, ctx: &dyn EvalContext, budget: &mut Budget) -> Result<Value, EvalError> {
    let fail = |f: Fail| match f {
        Fail::Msg(message) => EvalError::Function {
            function: spec_of(call.func).name.to_string(),
            column: call.column,
            message,
        },
        Fail::Limit(error) => EvalError::Limit {
            function: spec_of(call.func).name.to_string(),
            column: call.column,
            error,
        },
    };
    let msg = |m: String| fail(Fail::Msg(m));
    let arg = |i: usize, budget: &mut Budget| match call.args.get(i) {
        Some(n) => eval(n, ctx, budget),
        None => Ok(Value::Null),
    };
    // The functions that pick among their arguments evaluate lazily; what
    // they return was charged when it was produced.
    match call.func {
        Func::Iif => {
            let cond = condition(&arg(0, budget)?).map_err(msg)?;
            return arg(if cond { 1 } else { 2 }, budget);
        }
        Func::Switch => {
            // The source is always evaluated from the full object, so an
            // unchanged source can never read as null (Entra's known bug).
            let source = compare_key(&arg(0, budget)?);
            let mut i = 2;
            while i + 1 < call.args.len() {
                if compare_key(&arg(i, budget)?) == source {
                    return arg(i + 1, budget);
                }
                i += 2;
            }
            return arg(1, budget);
        }
        Func::Coalesce => {
            for i in 0..call.args.len() {
                let v = arg(i, budget)?;
                if !is_null(&v) {
                    return Ok(v);
                }
            }
            return Ok(Value::Null);
        }
        Func::SelectUniqueValue => {
            for i in 0..call.args.len() {
                let v = arg(i, budget)?;
                if !is_null_or_empty(&v) {
                    return Ok(v);
                }
            }
            return Ok(Value::Null);
        }
        Func::IgnoreFlowIfNullOrEmpty => {
            let v = arg(0, budget)?;
            return if is_null_or_empty(&v) {
                Err(EvalError::IgnoreFlow)
            } else {
                Ok(v)
            };
        }
        _ => {}
    }
    let mut args = Vec::with_capacity(call.args.len());
    for i in 0..call.args.len() {
        args.push(arg(i, budget)?);
    }
    let v = strict(call, &args, ctx, budget).map_err(fail)?;
    budget.produced(&v).map_err(|e| fail(Fail::Limit(e)))?;
    Ok(v)
}

fn value_bytes_of(list: &[String]) -> usize {
    list.iter().fold(0, |n, s| n + s.len() + bounds::ITEM_BYTES)
}

fn a(args: &[Value], i: usize) -> &Value {
    args.get(i).unwrap_or(&NULL)
}

fn is_null(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::TextList(l) => l.is_empty(),
        _ => false,
    }
}

fn is_null_or_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Text(s) => s.is_empty(),
        Value::TextList(l) => l.is_empty(),
        _ => false,
    }
}

/// The text form used for comparisons: `None` for null, one string per value.
fn compare_key(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Null => None,
        Value::TextList(l) if l.is_empty() => None,
        Value::TextList(l) => Some(l.clone()),
        other => scalar_text(other).map(|s| vec![s]),
    }
}

fn format_number(n: f64) -> String {
    if n.is_finite() && n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Boolean(true) => Some("True".into()),
        Value::Boolean(false) => Some("False".into()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Number(n) => Some(format_number(*n)),
        Value::Text(s) => Some(s.clone()),
        Value::TextList(l) => l.first().cloned(),
    }
}

/// A single text value; `None` for null; an error for a list of several.
fn text(v: &Value, what: &str) -> Result<Option<String>, String> {
    match v {
        Value::TextList(l) if l.len() > 1 => Err(format!(
            "{what} must be a single value, but it is a list of {} values",
            l.len()
        )),
        other => Ok(scalar_text(other)),
    }
}

/// Text that must be present.
fn required_text(v: &Value, what: &str) -> Result<String, String> {
    text(v, what)?.ok_or_else(|| format!("{what} is required but is null"))
}

/// A whole number; `None` for null.
fn int(v: &Value, what: &str) -> Result<Option<i64>, String> {
    let bad = |shown: String| format!("{what} must be a whole number, found {shown}");
    match v {
        Value::Null => Ok(None),
        Value::Integer(i) => Ok(Some(*i)),
        Value::Number(n) => {
            if n.is_finite() && n.fract() == 0.0 && n.abs() < 9.0e18 {
                Ok(Some(*n as i64))
            } else {
                Err(bad(format_number(*n)))
            }
        }
        Value::Boolean(b) => Err(bad(b.to_string())),
        Value::Text(_) | Value::TextList(_) => {
            let Some(s) = text(v, what)? else {
                return Ok(None);
            };
            let t = s.trim();
            if let Ok(i) = t.parse::<i64>() {
                return Ok(Some(i));
            }
            match t.parse::<f64>() {
                Ok(n) if n.is_finite() && n.fract() == 0.0 && n.abs() < 9.0e18 => {
                    Ok(Some(n as i64))
                }
                _ => Err(bad(format!("\"{s}\""))),
            }
        }
    }
}

fn required_int(v: &Value, what: &str) -> Result<i64, String> {
    int(v, what)?.ok_or_else(|| format!("{what} is required but is null"))
}

/// A condition: booleans, `"True"`/`"False"` (any case) and numbers (non-zero
/// is true); null is false.
fn condition(v: &Value) -> Result<bool, String> {
    match v {
        Value::Null => Ok(false),
        Value::Boolean(b) => Ok(*b),
        Value::Integer(i) => Ok(*i != 0),
        Value::Number(n) => Ok(*n != 0.0),
        Value::Text(_) | Value::TextList(_) => {
            let Some(s) = text(v, "the condition")? else {
                return Ok(false);
            };
            let t = s.trim();
            if t.eq_ignore_ascii_case("true") {
                Ok(true)
            } else if t.eq_ignore_ascii_case("false") {
                Ok(false)
            } else if let Ok(n) = t.parse::<f64>() {
                Ok(n != 0.0)
            } else {
                Err(format!("\"{s}\" is neither True nor False"))
            }
        }
    }
}

/// Apply a text function to a value, element-wise over lists; null stays
/// null. `f` gets the [`Room`] left in the value being built, so a function
/// that can grow its input checks its result's size before building it;
/// every result is checked after too, and each list element is a step.
fn map_text(
    v: &Value,
    budget: &mut Budget,
    f: impl Fn(&str, Room) -> Result<String, Fail>,
) -> Result<Value, Fail> {
    let limit = budget.max_value();
    match v {
        Value::Null => Ok(Value::Null),
        Value::TextList(l) => {
            budget.step(l.len())?;
            let mut out = Vec::with_capacity(l.len());
            let mut used = 0usize;
            for s in l {
                used = used.saturating_add(bounds::ITEM_BYTES);
                let r = f(s, Room { used, limit })?;
                bounds::note_built(r.len());
                used = used.saturating_add(r.len());
                bounds::fits(used, limit)?;
                out.push(r);
            }
            Ok(Value::TextList(out))
        }
        other => match scalar_text(other) {
            Some(s) => {
                let r = f(&s, Room { used: 0, limit })?;
                bounds::note_built(r.len());
                bounds::fits(r.len(), limit)?;
                Ok(Value::Text(r))
            }
            None => Ok(Value::Null),
        },
    }
}

fn date(v: &Value, what: &str) -> Result<Option<Stamp>, String> {
    match text(v, what)? {
        None => Ok(None),
        Some(s) => dotnet_time::parse_flexible(&s).map(Some),
    }
}

fn entra_date(utc: NaiveDateTime) -> Result<Value, String> {
    dotnet_time::format(Stamp::from_utc(utc), ENTRA_FORMAT).map(Value::Text)
}

fn strict(
    call: &Call,
    args: &[Value],
    ctx: &dyn EvalContext,
    budget: &mut Budget,
) -> Result<Value, Fail> {
    let v0 = a(args, 0);
    Ok(match call.func {
        Func::Append => {
            let suffix = text(a(args, 1), "suffix")?.unwrap_or_default();
            map_text(v0, budget, |s, room| {
                room.fits(s.len().saturating_add(suffix.len()))?;
                Ok(format!("{s}{suffix}"))
            })?
        }
        Func::BitAnd => match (int(v0, "value1")?, int(a(args, 1), "value2")?) {
            (Some(x), Some(y)) => Value::Integer(x & y),
            _ => Value::Null,
        },
        Func::CBool => Value::Boolean(condition(v0)?),
        Func::CDate => match date(v0, "expression")? {
            Some(d) => entra_date(d.utc())?,
            None => Value::Null,
        },
        Func::ConvertToBase64 => match text(v0, "source")? {
            Some(s) => {
                let bytes: Vec<u8> = s.encode_utf16().flat_map(u16::to_le_bytes).collect();
                Value::Text(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
            None => Value::Null,
        },
        Func::ConvertToUtf8Hex => match text(v0, "source")? {
            Some(s) => Value::Text(hex::encode_upper(s.as_bytes())),
            None => Value::Null,
        },
        Func::Count => Value::Integer(match v0 {
            Value::Null => 0,
            Value::TextList(l) => i64::try_from(l.len()).unwrap_or(i64::MAX),
            _ => 1,
        }),
        Func::CStr => match text(v0, "value")? {
            Some(s) => Value::Text(s),
            None => Value::Null,
        },
        Func::DateAdd => {
            let interval = required_text(v0, "interval")?;
            let (Some(n), Some(d)) = (int(a(args, 1), "value")?, date(a(args, 2), "dateTime")?)
            else {
                return Ok(Value::Null);
            };
            entra_date(date_add(&interval, n, d.utc())?)?
        }
        Func::DateDiff => {
            let interval = required_text(v0, "interval")?;
            let (Some(d1), Some(d2)) = (date(a(args, 1), "date1")?, date(a(args, 2), "date2")?)
            else {
                return Ok(Value::Null);
            };
            Value::Integer(date_diff(&interval, d1.utc(), d2.utc())?)
        }
        Func::DateFromNum => match int(v0, "value")? {
            Some(ticks) => entra_date(
                dotnet_time::from_filetime(ticks)
                    .ok_or_else(|| format!("{ticks} is outside the range of dates"))?,
            )?,
            None => Value::Null,
        },
        Func::FormatDateTime => {
            let (styles, input_format, output_format) = if args.len() == 4 {
                (a(args, 1), a(args, 2), a(args, 3))
            } else {
                (&NULL, a(args, 1), a(args, 2))
            };
            let input_format = required_text(input_format, "inputFormat")?;
            let output_format = required_text(output_format, "outputFormat")?;
            let styles = text(styles, "dateTimeStyles")?.unwrap_or_default();
            map_text(v0, budget, |s, _| {
                Ok(format_date_time(s, &styles, &input_format, &output_format)?)
            })?
        }
        Func::Guid => Value::Text(ctx.new_guid()),
        Func::InStr => instr(args)?,
        Func::IsNull => Value::Boolean(matches!(v0, Value::Null)),
        Func::IsNullOrEmpty => Value::Boolean(is_null_or_empty(v0)),
        Func::IsPresent => Value::Boolean(!is_null_or_empty(v0)),
        Func::IsString => Value::Boolean(matches!(v0, Value::Text(_))),
        Func::Item => {
            let index = required_int(a(args, 1), "index")?;
            if index < 1 {
                return Err(format!("index is 1-based; {index} is not an item").into());
            }
            let i = usize::try_from(index - 1).unwrap_or(usize::MAX);
            match v0 {
                Value::Null => Value::Null,
                Value::TextList(l) => l.get(i).cloned().map(Value::Text).unwrap_or(Value::Null),
                other if i == 0 => other.clone(),
                _ => Value::Null,
            }
        }
        Func::Join => {
            let sep = text(v0, "separator")?.unwrap_or_default();
            let mut parts: Vec<String> = Vec::new();
            for v in args.iter().skip(1) {
                match v {
                    Value::TextList(l) => {
                        budget.step(l.len())?;
                        parts.extend(l.iter().cloned());
                    }
                    other => parts.extend(scalar_text(other)),
                }
            }
            if parts.is_empty() && args.iter().skip(1).all(is_null) {
                Value::Null
            } else {
                // Size it before joining: the separator repeats per part.
                let size = parts
                    .iter()
                    .fold(0usize, |n, p| n.saturating_add(p.len()))
                    .saturating_add(sep.len().saturating_mul(parts.len().saturating_sub(1)));
                bounds::fits(size, budget.max_value())?;
                let joined = parts.join(&sep);
                bounds::note_built(joined.len());
                Value::Text(joined)
            }
        }
        Func::Left => {
            let n = required_int(a(args, 1), "numChars")?;
            match text(v0, "string")? {
                None => Value::Null,
                Some(s) if n < 0 => Value::Text(s),
                Some(s) => Value::Text(
                    s.chars()
                        .take(usize::try_from(n).unwrap_or(usize::MAX))
                        .collect(),
                ),
            }
        }
        Func::Mid => {
            let start = required_int(a(args, 1), "start")?;
            let length = required_int(a(args, 2), "length")?;
            if start < 1 {
                return Err(format!("start is 1-based; {start} is not a position").into());
            }
            if length < 0 {
                return Err(format!("length cannot be negative ({length})").into());
            }
            let skip = usize::try_from(start - 1).unwrap_or(usize::MAX);
            let take = usize::try_from(length).unwrap_or(usize::MAX);
            match text(v0, "source")? {
                None => Value::Null,
                Some(s) => Value::Text(s.chars().skip(skip).take(take).collect()),
            }
        }
        Func::NormalizeDiacritics => map_text(v0, budget, |s, _| Ok(normalize_diacritics(s)))?,
        Func::Not => Value::Boolean(!condition(v0).unwrap_or(false)),
        Func::Now => entra_date(ctx.now().naive_utc())?,
        Func::NumFromDate => match date(v0, "value")? {
            Some(d) => Value::Integer(
                dotnet_time::to_filetime(d.utc())
                    .ok_or_else(|| "the date is outside the FILETIME range".to_string())?,
            ),
            None => Value::Null,
        },
        Func::PCase => {
            let seps = text(a(args, 1), "wordSeparators")?;
            let seps: Option<Vec<char>> = seps.map(|s| char_set(&s));
            map_text(v0, budget, |s, _| Ok(pcase(s, seps.as_deref())))?
        }
        Func::RandomString => random_string(args)?,
        Func::Redact => v0.clone(),
        Func::RemoveDuplicates => match v0 {
            Value::TextList(l) => {
                budget.step(l.len())?;
                let mut seen = std::collections::HashSet::with_capacity(l.len());
                let mut out: Vec<String> = Vec::with_capacity(l.len());
                for s in l {
                    if seen.insert(s.as_str()) {
                        out.push(s.clone());
                    }
                }
                Value::TextList(out)
            }
            other => other.clone(),
        },
        Func::Replace => replace(call, args, budget)?,
        Func::SingleAppRoleAssignment => {
            let mut roles: Vec<String> = Vec::new();
            let all: Vec<String> = match v0 {
                Value::TextList(l) => {
                    budget.step(l.len())?;
                    l.clone()
                }
                other => scalar_text(other).into_iter().collect(),
            };
            let mut seen = std::collections::HashSet::new();
            for r in all {
                if !r.is_empty() && seen.insert(r.clone()) {
                    roles.push(r);
                }
            }
            match roles.len() {
                0 => Value::Null,
                1 => Value::Text(roles.remove(0)),
                n => {
                    return Err(format!(
                        "{n} different app roles are assigned ({}); exactly one is allowed",
                        roles.join(", ")
                    )
                    .into());
                }
            }
        }
        Func::Split => {
            let delim = required_text(a(args, 1), "delimiter")?;
            match text(v0, "source")? {
                None => Value::Null,
                Some(s) if delim.is_empty() => Value::TextList(vec![s]),
                Some(s) => {
                    // Count and size the parts before making them.
                    let parts = s.split(delim.as_str()).count();
                    budget.step(parts)?;
                    let size = (s.len() - (parts - 1) * delim.len())
                        .saturating_add(parts.saturating_mul(bounds::ITEM_BYTES));
                    bounds::fits(size, budget.max_value())?;
                    let list: Vec<String> = s.split(delim.as_str()).map(str::to_string).collect();
                    bounds::note_built(value_bytes_of(&list));
                    Value::TextList(list)
                }
            }
        }
        Func::StripSpaces => map_text(v0, budget, |s, _| {
            Ok(s.chars().filter(|c| !c.is_whitespace()).collect())
        })?,
        Func::ToLower => map_text(v0, budget, |s, _| Ok(s.to_lowercase()))?,
        Func::ToUpper => map_text(v0, budget, |s, _| Ok(s.to_uppercase()))?,
        Func::Word => {
            let n = required_int(a(args, 1), "wordNumber")?;
            let delims = char_set(&text(a(args, 2), "delimiters")?.unwrap_or_default());
            match text(v0, "string")? {
                None => Value::Null,
                Some(s) => {
                    let word = usize::try_from(n)
                        .ok()
                        .and_then(|n| n.checked_sub(1))
                        .and_then(|i| {
                            s.split(|c: char| delims.binary_search(&c).is_ok())
                                .filter(|w| !w.is_empty())
                                .nth(i)
                        });
                    word.map(|w| Value::Text(w.to_string()))
                        .unwrap_or(Value::Null)
                }
            }
        }
        // Evaluated lazily in eval_call.
        Func::Iif
        | Func::Switch
        | Func::Coalesce
        | Func::SelectUniqueValue
        | Func::IgnoreFlowIfNullOrEmpty => Value::Null,
    })
}

fn interval_error(interval: &str) -> String {
    format!(
        "unknown interval \"{interval}\"; use yyyy (year), q (quarter), m (month), y (day of year), \
         d (day), w (weekday), ww (week), h (hour), n (minute) or s (second)"
    )
}

fn date_add(interval: &str, n: i64, t: NaiveDateTime) -> Result<NaiveDateTime, String> {
    let overflow = || format!("adding {n} \"{interval}\" leaves the range of dates");
    let months = |count: Option<i64>| -> Result<NaiveDateTime, String> {
        let count = count.ok_or_else(overflow)?;
        let m = Months::new(u32::try_from(count.unsigned_abs()).map_err(|_| overflow())?);
        if count >= 0 {
            t.checked_add_months(m)
        } else {
            t.checked_sub_months(m)
        }
        .ok_or_else(overflow)
    };
    let delta = |d: Option<TimeDelta>| -> Result<NaiveDateTime, String> {
        d.and_then(|d| t.checked_add_signed(d)).ok_or_else(overflow)
    };
    match interval.trim().to_ascii_lowercase().as_str() {
        "yyyy" => months(n.checked_mul(12)),
        "q" => months(n.checked_mul(3)),
        "m" => months(Some(n)),
        "y" | "d" | "w" => delta(TimeDelta::try_days(n)),
        "ww" => delta(TimeDelta::try_weeks(n)),
        "h" => delta(TimeDelta::try_hours(n)),
        "n" => delta(TimeDelta::try_minutes(n)),
        "s" => delta(TimeDelta::try_seconds(n)),
        _ => Err(interval_error(interval)),
    }
}

fn date_diff(interval: &str, d1: NaiveDateTime, d2: NaiveDateTime) -> Result<i64, String> {
    let span = d2.signed_duration_since(d1);
    let (y1, y2) = (i64::from(d1.year()), i64::from(d2.year()));
    let (m1, m2) = (i64::from(d1.month0()), i64::from(d2.month0()));
    Ok(match interval.trim().to_ascii_lowercase().as_str() {
        "yyyy" => y2 - y1,
        "q" => (y2 * 4 + m2 / 3) - (y1 * 4 + m1 / 3),
        "m" => (y2 * 12 + m2) - (y1 * 12 + m1),
        "y" | "d" => span.num_days(),
        "w" => span.num_days() / 7,
        "ww" => {
            // Calendar weeks: count the Sundays crossed.
            let sunday = |d: NaiveDateTime| {
                d.date()
                    .checked_sub_signed(TimeDelta::days(i64::from(
                        d.weekday().num_days_from_sunday(),
                    )))
                    .unwrap_or(d.date())
            };
            sunday(d2).signed_duration_since(sunday(d1)).num_days() / 7
        }
        "h" => span.num_hours(),
        "n" => span.num_minutes(),
        "s" => span.num_seconds(),
        _ => return Err(interval_error(interval)),
    })
}

fn format_date_time(
    source: &str,
    styles: &str,
    input_format: &str,
    output_format: &str,
) -> Result<String, String> {
    let mut input = source.to_string();
    let mut adjust_to_utc = false;
    let mut assume_utc = false;
    for style in styles
        .split([',', '|'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match style.to_ascii_lowercase().as_str() {
            "none"
            | "nocurrentdatedefault"
            | "roundtripkind"
            | "assumelocal"
            | "allowinnerwhite" => {}
            "allowleadingwhite" => input = input.trim_start().to_string(),
            "allowtrailingwhite" => input = input.trim_end().to_string(),
            "allowwhitespaces" => input = input.trim().to_string(),
            "adjusttouniversal" => adjust_to_utc = true,
            "assumeuniversal" => assume_utc = true,
            _ => {
                return Err(format!(
                    "unknown dateTimeStyles value \"{style}\"; use None, AdjustToUniversal, \
                     AssumeUniversal, AssumeLocal, AllowWhiteSpaces, AllowLeadingWhite, \
                     AllowTrailingWhite or RoundtripKind"
                ));
            }
        }
    }
    let mut stamp = dotnet_time::parse_exact(&input, input_format)?;
    if assume_utc && stamp.zone == Zone::Unspecified {
        stamp.zone = Zone::Utc;
    }
    if adjust_to_utc {
        stamp = stamp.to_utc();
    }
    dotnet_time::format(stamp, output_format)
}

fn instr(args: &[Value]) -> Result<Value, String> {
    let start = int(a(args, 2), "start")?.unwrap_or(1);
    if start < 1 {
        return Err(format!("start is 1-based; {start} is not a position"));
    }
    let ignore_case = match a(args, 3) {
        Value::Null => false,
        Value::Integer(0) => false,
        Value::Integer(1) => true,
        other => match text(other, "compareType")?
            .unwrap_or_default()
            .to_ascii_lowercase()
            .as_str()
        {
            "vbbinarycompare" | "0" => false,
            "vbtextcompare" | "1" => true,
            _ => {
                return Err(
                    "compareType must be vbBinaryCompare (case-sensitive) or vbTextCompare"
                        .to_string(),
                );
            }
        },
    };
    let (Some(hay), Some(needle)) = (text(a(args, 0), "value1")?, text(a(args, 1), "value2")?)
    else {
        return Ok(Value::Null);
    };
    // Fold case one character to one character, so the search is a plain
    // substring search (linear) and positions stay in characters. A
    // character whose lower case is several characters (only U+0130)
    // folds to itself, which nothing else folds to.
    let fold = |c: char| -> char {
        if !ignore_case {
            return c;
        }
        let mut l = c.to_lowercase();
        match (l.next(), l.next()) {
            (Some(x), None) => x,
            _ => c,
        }
    };
    let hay: String = hay.chars().map(fold).collect();
    let needle: String = needle.chars().map(fold).collect();
    let from = usize::try_from(start - 1).unwrap_or(usize::MAX);
    if from > hay.chars().count() {
        return Ok(Value::Integer(0));
    }
    if needle.is_empty() {
        return Ok(Value::Integer(start));
    }
    let byte_from = hay.char_indices().nth(from).map_or(hay.len(), |(i, _)| i);
    let rest = hay.get(byte_from..).unwrap_or("");
    Ok(Value::Integer(match rest.find(&needle) {
        Some(b) => {
            let chars_before = rest.get(..b).map_or(0, |p| p.chars().count());
            i64::try_from(from + chars_before + 1).unwrap_or(0)
        }
        None => 0,
    }))
}

fn normalize_diacritics(s: &str) -> String {
    s.nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .map(|c| match c {
            'ø' => 'o',
            'Ø' => 'O',
            'đ' => 'd',
            'Đ' => 'D',
            'ł' => 'l',
            'Ł' => 'L',
            'ħ' => 'h',
            'Ħ' => 'H',
            'ı' => 'i',
            'ŧ' => 't',
            'Ŧ' => 'T',
            c => c,
        })
        .nfc()
        .collect()
}

/// The distinct characters of `s`, sorted for binary search (a long
/// delimiter list must not make every character a linear scan).
fn char_set(s: &str) -> Vec<char> {
    let mut v: Vec<char> = s.chars().collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn pcase(s: &str, separators: Option<&[char]>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at_word_start = true;
    for c in s.chars() {
        if at_word_start {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
        at_word_start = match separators {
            Some(seps) => seps.binary_search(&c).is_ok(),
            // Like .NET's ToTitleCase: anything but letters, digits and
            // apostrophes separates words.
            None => !(c.is_alphanumeric() || c == '\'' || c == '\u{2019}'),
        };
    }
    out
}

const SPECIAL: &str = "!#$%&()*+,-./:;<=>?@[]^_{|}~";

fn random_string(args: &[Value]) -> Result<Value, String> {
    let count = |i: usize, what: &str| -> Result<usize, String> {
        let n = int(a(args, i), what)?.unwrap_or(0);
        usize::try_from(n).map_err(|_| format!("{what} cannot be negative ({n})"))
    };
    let length = count(0, "length")?;
    if length == 0 || length > 256 {
        return Err(format!("length must be between 1 and 256, found {length}"));
    }
    let avoid = text(a(args, 5), "charactersToAvoid")?.unwrap_or_default();
    let class =
        |chars: &str| -> Vec<char> { chars.chars().filter(|c| !avoid.contains(*c)).collect() };
    let classes = [
        (
            "minimumNumbers",
            class("0123456789"),
            count(1, "minimumNumbers")?,
        ),
        (
            "minimumSpecialCharacters",
            class(SPECIAL),
            count(2, "minimumSpecialCharacters")?,
        ),
        (
            "minimumCapital",
            class("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
            count(3, "minimumCapital")?,
        ),
        (
            "minimumLowerCase",
            class("abcdefghijklmnopqrstuvwxyz"),
            count(4, "minimumLowerCase")?,
        ),
    ];
    let total: usize = classes
        .iter()
        .map(|(_, _, n)| n)
        .fold(0usize, |s, n| s.saturating_add(*n));
    if total > length {
        return Err(format!(
            "the minimums add up to {total}, more than the length {length}"
        ));
    }
    let mut rng = rand::rng();
    let mut out: Vec<char> = Vec::with_capacity(length);
    let mut pool: Vec<char> = Vec::new();
    for (what, chars, min) in &classes {
        if *min > 0 && chars.is_empty() {
            return Err(format!(
                "{what} is {min}, but charactersToAvoid excludes every such character"
            ));
        }
        for _ in 0..*min {
            out.push(chars[rng.random_range(0..chars.len())]);
        }
        pool.extend(chars.iter());
    }
    if pool.is_empty() {
        return Err("charactersToAvoid excludes every character".to_string());
    }
    while out.len() < length {
        out.push(pool[rng.random_range(0..pool.len())]);
    }
    out.shuffle(&mut rng);
    Ok(Value::Text(out.into_iter().collect()))
}

/// One part of a regular-expression replacement: literal text or a capture
/// group's text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'r> {
    Lit(&'r str),
    Group(usize),
}

/// Split a replacement string into [`Piece`]s by the `regex` crate's own
/// rules (`$1`, `$name`, `${name}`, `$$`; a `$` that starts no reference is
/// literal; a name runs over `[_0-9A-Za-z]`; an unknown name is nothing), so
/// the result's size is known before it is built. Mirrors
/// `regex_automata::util::interpolate::string`; a test checks them equal.
fn parse_replacement<'r>(
    mut rep: &'r str,
    mut name_to_index: impl FnMut(&str) -> Option<usize>,
) -> Vec<Piece<'r>> {
    let mut out = Vec::new();
    while let Some(i) = rep.find('$') {
        if i > 0 {
            out.push(Piece::Lit(&rep[..i]));
        }
        rep = &rep[i..];
        let b = rep.as_bytes();
        if b.get(1) == Some(&b'$') {
            out.push(Piece::Lit("$"));
            rep = &rep[2..];
            continue;
        }
        // `rep` starts with '$'. Find the reference, if any.
        let (name, end) = if b.get(1) == Some(&b'{') {
            match rep[2..].find('}') {
                Some(close) => (Some(&rep[2..2 + close]), 2 + close + 1),
                None => (None, 1),
            }
        } else {
            let len = b[1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
            if len == 0 {
                (None, 1)
            } else {
                (Some(&rep[1..1 + len]), 1 + len)
            }
        };
        match name {
            None => out.push(Piece::Lit("$")),
            Some(name) => match name.parse::<usize>() {
                Ok(i) => out.push(Piece::Group(i)),
                Err(_) => {
                    if let Some(i) = name_to_index(name) {
                        out.push(Piece::Group(i));
                    }
                }
            },
        }
        rep = &rep[end..];
    }
    if !rep.is_empty() {
        out.push(Piece::Lit(rep));
    }
    out
}

/// The literal bytes and the number of group references of a replacement
/// (for the static check: every reference may be a whole match).
pub(crate) fn replacement_shape(rep: &str) -> (usize, usize) {
    parse_replacement(rep, |_| Some(0))
        .iter()
        .fold((0, 0), |(lit, refs), p| match p {
            Piece::Lit(s) => (lit + s.len(), refs),
            Piece::Group(_) => (lit, refs + 1),
        })
}

fn expansion_len(pieces: &[Piece<'_>], caps: &regex::Captures<'_>) -> usize {
    pieces.iter().fold(0usize, |n, p| {
        n.saturating_add(match p {
            Piece::Lit(s) => s.len(),
            Piece::Group(i) => caps.get(*i).map_or(0, |m| m.len()),
        })
    })
}

fn expand(pieces: &[Piece<'_>], caps: &regex::Captures<'_>, out: &mut String) {
    for p in pieces {
        match p {
            Piece::Lit(s) => out.push_str(s),
            Piece::Group(i) => out.push_str(caps.get(*i).map_or("", |m| m.as_str())),
        }
    }
}

/// `re.replace_all(s, replacement)` from the replacement's pieces.
fn regex_replace(re: &regex::Regex, pieces: &[Piece<'_>], s: &str, size: usize) -> String {
    let mut out = String::with_capacity(size);
    let mut last = 0;
    for caps in re.captures_iter(s) {
        let Some(m) = caps.get(0) else { continue };
        out.push_str(s.get(last..m.start()).unwrap_or(""));
        expand(pieces, &caps, &mut out);
        last = m.end();
    }
    out.push_str(s.get(last..).unwrap_or(""));
    out
}

/// The length of `hay` with every `old` replaced by `new_len` bytes, without
/// building it.
fn replaced_len(hay: &str, old: &str, new_len: usize) -> usize {
    let count = hay.matches(old).count();
    (hay.len() - count * old.len()).saturating_add(count.saturating_mul(new_len))
}

fn replace(call: &Call, args: &[Value], budget: &mut Budget) -> Result<Value, Fail> {
    let old = text(a(args, 1), "oldValue")?;
    let group = text(a(args, 3), "regexGroupName")?;
    let replacement = text(a(args, 4), "replacementValue")?;
    let replacement_attr = text(a(args, 5), "replacementAttributeName")?;
    let template = text(a(args, 6), "template")?;
    // Every branch sizes its result before building it.
    if let Some(old) = old {
        if old.is_empty() {
            return Err("oldValue is empty".to_string().into());
        }
        return match template {
            Some(template) => map_text(a(args, 0), budget, |s, room| {
                room.fits(replaced_len(&template, &old, s.len()))?;
                Ok(template.replace(&old, s))
            }),
            None => {
                let new = replacement.unwrap_or_default();
                map_text(a(args, 0), budget, |s, room| {
                    room.fits(replaced_len(s, &old, new.len()))?;
                    Ok(s.replace(&old, &new))
                })
            }
        };
    }
    let compiled;
    let re = match (&call.regex, text(a(args, 2), "regexPattern")?) {
        (Some(re), _) => re,
        (None, Some(pattern)) => {
            budget.step(bounds::REGEX_COMPILE_STEPS)?;
            compiled = compile_regex(&pattern)?;
            &compiled
        }
        (None, None) => {
            return Err("give either oldValue or regexPattern".to_string().into());
        }
    };
    let new = replacement.or(replacement_attr).unwrap_or_default();
    match group {
        None => {
            let pieces = parse_replacement(&new, |name| {
                re.capture_names().position(|n| n == Some(name))
            });
            map_text(a(args, 0), budget, |s, room| {
                let mut size = s.len();
                for caps in re.captures_iter(s) {
                    let m_len = caps.get(0).map_or(0, |m| m.len());
                    size = (size - m_len).saturating_add(expansion_len(&pieces, &caps));
                }
                room.fits(size)?;
                Ok(regex_replace(re, &pieces, s, size))
            })
        }
        Some(group) => {
            if !re.capture_names().any(|n| n == Some(group.as_str())) {
                return Err(format!("the regular expression has no group named '{group}'").into());
            }
            map_text(a(args, 0), budget, |s, room| {
                let mut size = s.len();
                for caps in re.captures_iter(s) {
                    if let Some(m) = caps.name(&group) {
                        size = (size - m.len()).saturating_add(new.len());
                    }
                }
                room.fits(size)?;
                let mut out = String::with_capacity(size);
                let mut last = 0;
                for caps in re.captures_iter(s) {
                    if let Some(m) = caps.name(&group) {
                        out.push_str(s.get(last..m.start()).unwrap_or(""));
                        out.push_str(&new);
                        last = m.end();
                    }
                }
                out.push_str(s.get(last..).unwrap_or(""));
                Ok(out)
            })
        }
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    /// Replace every match of `re` in `hay` by `rep` the way `Replace`
    /// does, for comparison with the `regex` crate.
    pub(crate) fn expand_all(re: &regex::Regex, hay: &str, rep: &str) -> String {
        let pieces =
            super::parse_replacement(rep, |name| re.capture_names().position(|n| n == Some(name)));
        super::regex_replace(re, &pieces, hay, 0)
    }
}
