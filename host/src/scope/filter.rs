//! Scoping filters: Entra's clause operators, their configuration and how a
//! clause is tested against an object's attributes.
//!
//! Semantics (chosen to match Entra where its documentation is clear, and
//! safe where it is not):
//! - An attribute is looked up by exact name first, then case-insensitively.
//!   A missing attribute and [`Value::Null`] are "null"; so are an empty text
//!   and an empty list.
//! - A list attribute matches a value operator when any of its items does.
//! - `EQUALS`, `NOT EQUALS`, `ENDS_WITH` and `INCLUDES` compare text
//!   case-insensitively (Unicode lower case): directory values such as
//!   `userPrincipalName`, `mail` or `department` are case-insensitive in
//!   practice and a case mismatch silently deprovisioning users is the worse
//!   failure. Use `REGEX MATCH` for a case-sensitive test. Numbers and
//!   booleans compare by their text (`true`, `42`); `EQUALS` on a number
//!   with a numeric value compares numerically (`42` equals `42.0`).
//! - `NOT EQUALS`, `NOT REGEX MATCH` and `IS NOT NULL` are the exact
//!   complements of `EQUALS`, `REGEX MATCH` and `IS NULL`, so a null
//!   attribute passes `NOT EQUALS`.
//! - `REGEX MATCH` finds the pattern anywhere in the text (anchor it with
//!   `^...$` for a whole match), case-sensitively unless the pattern says
//!   `(?i)`, like .NET's `Regex.IsMatch` that Entra uses.
//! - `GREATER_THAN` and `GREATER_THAN_OR_EQUALS` are numeric: the attribute
//!   must be a number or a text holding one; otherwise the clause is false.
//! - `&` is true when `attribute & value != 0`, `!&` when it is `0`; both
//!   need an integer attribute (or text holding one) and are false otherwise.
//! - `IS TRUE` and `IS FALSE` accept booleans and the texts `true`/`false`
//!   (any case); anything else, null included, is neither.

use crate::model::Value;
use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A clause operator, named as in Entra's scoping filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `&`: bitwise AND of the integer attribute and value is non-zero.
    BitAnd,
    /// `!&`: bitwise AND of the integer attribute and value is zero.
    NotBitAnd,
    /// `ENDS_WITH`: the text ends with the value (case-insensitive).
    EndsWith,
    /// `EQUALS`: the text equals the value (case-insensitive).
    Equals,
    /// `GREATER_THAN`: numerically greater.
    GreaterThan,
    /// `GREATER_THAN_OR_EQUALS`: numerically greater or equal.
    GreaterThanOrEquals,
    /// `INCLUDES`: the text contains the value (case-insensitive).
    Includes,
    /// `IS FALSE`: the attribute is boolean false.
    IsFalse,
    /// `IS NOT NULL`: the attribute has a value.
    IsNotNull,
    /// `IS NULL`: the attribute is missing, null or empty.
    IsNull,
    /// `IS TRUE`: the attribute is boolean true.
    IsTrue,
    /// `NOT EQUALS`: complement of `EQUALS`.
    NotEquals,
    /// `REGEX MATCH`: the regular expression matches somewhere in the text.
    RegexMatch,
    /// `NOT REGEX MATCH`: complement of `REGEX MATCH`.
    NotRegexMatch,
}

impl Operator {
    /// Every operator.
    pub const ALL: [Operator; 14] = [
        Operator::BitAnd,
        Operator::NotBitAnd,
        Operator::EndsWith,
        Operator::Equals,
        Operator::GreaterThan,
        Operator::GreaterThanOrEquals,
        Operator::Includes,
        Operator::IsFalse,
        Operator::IsNotNull,
        Operator::IsNull,
        Operator::IsTrue,
        Operator::NotEquals,
        Operator::RegexMatch,
        Operator::NotRegexMatch,
    ];

    /// Entra's name for the operator.
    pub fn name(self) -> &'static str {
        match self {
            Operator::BitAnd => "&",
            Operator::NotBitAnd => "!&",
            Operator::EndsWith => "ENDS_WITH",
            Operator::Equals => "EQUALS",
            Operator::GreaterThan => "GREATER_THAN",
            Operator::GreaterThanOrEquals => "GREATER_THAN_OR_EQUALS",
            Operator::Includes => "INCLUDES",
            Operator::IsFalse => "IS FALSE",
            Operator::IsNotNull => "IS NOT NULL",
            Operator::IsNull => "IS NULL",
            Operator::IsTrue => "IS TRUE",
            Operator::NotEquals => "NOT EQUALS",
            Operator::RegexMatch => "REGEX MATCH",
            Operator::NotRegexMatch => "NOT REGEX MATCH",
        }
    }

    /// Whether the operator needs a value (all but the `IS ...` ones).
    pub fn takes_value(self) -> bool {
        !matches!(
            self,
            Operator::IsFalse | Operator::IsNotNull | Operator::IsNull | Operator::IsTrue
        )
    }

    /// Parse an operator name: case-insensitive, with spaces or underscores
    /// between words (`is not null`, `IS_NOT_NULL`, `ends with`).
    pub fn parse(text: &str) -> Option<Self> {
        let wanted = normalise(text);
        Operator::ALL
            .into_iter()
            .find(|op| normalise(op.name()) == wanted)
    }
}

fn normalise(name: &str) -> String {
    name.split(|c: char| c == '_' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(" ")
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Operator {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Operator::parse(s).ok_or_else(|| {
            let names: Vec<&str> = Operator::ALL.iter().map(|o| o.name()).collect();
            format!("unknown operator {s:?}; use one of: {}", names.join(", "))
        })
    }
}

impl<'de> Deserialize<'de> for Operator {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Operator {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// One condition on one attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clause {
    /// Source attribute name, e.g. `department`.
    pub attribute: String,
    /// The operator.
    pub operator: Operator,
    /// The value to compare with; absent for the `IS ...` operators. Numbers
    /// and booleans in the configuration are taken as their text.
    #[serde(default, deserialize_with = "text_like")]
    pub value: Option<String>,
}

fn text_like<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum TextLike {
        Text(String),
        Integer(i64),
        Number(f64),
        Boolean(bool),
    }
    Ok(Option::<TextLike>::deserialize(d)?.map(|v| match v {
        TextLike::Text(s) => s,
        TextLike::Integer(i) => i.to_string(),
        TextLike::Number(n) => n.to_string(),
        TextLike::Boolean(b) => b.to_string(),
    }))
}

impl fmt::Display for Clause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.attribute, self.operator)?;
        if let Some(v) = &self.value {
            write!(f, " {v:?}")?;
        }
        Ok(())
    }
}

/// Clauses that must all hold (AND).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopingFilter {
    /// The clauses; at least one.
    pub clauses: Vec<Clause>,
}

/// A number from a clause value or an attribute.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn parse(text: &str) -> Option<Num> {
        let t = text.trim();
        if let Ok(i) = t.parse::<i64>() {
            return Some(Num::Int(i));
        }
        t.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Num::Float)
    }

    fn of(value: &Value) -> Vec<Num> {
        match value {
            Value::Integer(i) => vec![Num::Int(*i)],
            Value::Number(f) if f.is_finite() => vec![Num::Float(*f)],
            Value::Text(s) => Num::parse(s).into_iter().collect(),
            Value::TextList(l) => l.iter().filter_map(|s| Num::parse(s)).collect(),
            _ => Vec::new(),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    fn as_int(self) -> Option<i64> {
        match self {
            Num::Int(i) => Some(i),
            Num::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(f as i64),
            Num::Float(_) => None,
        }
    }

    fn cmp(self, other: Num) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
            (a, b) => a.as_f64().partial_cmp(&b.as_f64()),
        }
    }
}

/// A clause made ready to test: value lower-cased, number parsed, regex
/// compiled.
#[derive(Debug, Clone)]
pub(crate) struct CompiledClause {
    clause: Clause,
    lower: String,
    number: Option<Num>,
    regex: Option<Regex>,
}

/// A filter made ready to test.
pub(crate) type CompiledFilter = Vec<CompiledClause>;

impl CompiledClause {
    fn compile(clause: &Clause) -> Result<Self, String> {
        if clause.attribute.trim().is_empty() {
            return Err("attribute is empty".to_string());
        }
        let op = clause.operator;
        let value = match (&clause.value, op.takes_value()) {
            (Some(_), false) => {
                return Err(format!("{op} takes no value; remove 'value'"));
            }
            (None, true) => return Err(format!("{op} needs a 'value'")),
            (v, _) => v.clone().unwrap_or_default(),
        };
        let mut number = None;
        let mut regex = None;
        match op {
            Operator::GreaterThan | Operator::GreaterThanOrEquals => {
                number = Some(
                    Num::parse(&value)
                        .ok_or_else(|| format!("{op} needs a numeric value, found {value:?}"))?,
                );
            }
            Operator::BitAnd | Operator::NotBitAnd => {
                let n = value.trim().parse::<i64>().map_err(|_| {
                    format!("{op} needs an integer value (a bit mask), found {value:?}")
                })?;
                number = Some(Num::Int(n));
            }
            Operator::RegexMatch | Operator::NotRegexMatch => {
                regex = Some(
                    Regex::new(&value)
                        .map_err(|e| format!("invalid regular expression {value:?}: {e}"))?,
                );
            }
            Operator::Equals | Operator::NotEquals => number = Num::parse(&value),
            _ => {}
        }
        Ok(CompiledClause {
            clause: clause.clone(),
            lower: value.to_lowercase(),
            number,
            regex,
        })
    }

    /// The clause as configured.
    pub(crate) fn clause(&self) -> &Clause {
        &self.clause
    }

    /// Test the clause against attributes.
    pub(crate) fn matches(&self, attributes: &BTreeMap<String, Value>) -> bool {
        let value = lookup(attributes, &self.clause.attribute);
        let texts = || value.map(texts).unwrap_or_default();
        let nums = || value.map(Num::of).unwrap_or_default();
        match self.clause.operator {
            Operator::Equals => self.equals(value),
            Operator::NotEquals => !self.equals(value),
            Operator::EndsWith => texts()
                .iter()
                .any(|t| t.to_lowercase().ends_with(&self.lower)),
            Operator::Includes => texts()
                .iter()
                .any(|t| t.to_lowercase().contains(&self.lower)),
            Operator::RegexMatch => self.regex_matches(value),
            Operator::NotRegexMatch => !self.regex_matches(value),
            Operator::IsNull => is_null(value),
            Operator::IsNotNull => !is_null(value),
            Operator::IsTrue => value.and_then(as_bool) == Some(true),
            Operator::IsFalse => value.and_then(as_bool) == Some(false),
            Operator::GreaterThan | Operator::GreaterThanOrEquals => {
                let Some(limit) = self.number else {
                    return false;
                };
                let strict = self.clause.operator == Operator::GreaterThan;
                nums().into_iter().any(|n| match n.cmp(limit) {
                    Some(std::cmp::Ordering::Greater) => true,
                    Some(std::cmp::Ordering::Equal) => !strict,
                    _ => false,
                })
            }
            Operator::BitAnd | Operator::NotBitAnd => {
                let Some(mask) = self.number.and_then(Num::as_int) else {
                    return false;
                };
                let want_zero = self.clause.operator == Operator::NotBitAnd;
                nums()
                    .into_iter()
                    .filter_map(Num::as_int)
                    .any(|n| ((n & mask) == 0) == want_zero)
            }
        }
    }

    fn equals(&self, value: Option<&Value>) -> bool {
        let Some(value) = value else {
            return false;
        };
        if let (Some(want), Value::Integer(_) | Value::Number(_)) = (self.number, value) {
            return Num::of(value)
                .into_iter()
                .any(|n| n.cmp(want) == Some(std::cmp::Ordering::Equal));
        }
        texts(value).iter().any(|t| t.to_lowercase() == self.lower)
    }

    fn regex_matches(&self, value: Option<&Value>) -> bool {
        let Some(re) = &self.regex else {
            return false;
        };
        value
            .map(texts)
            .unwrap_or_default()
            .iter()
            .any(|t| re.is_match(t))
    }
}

/// Compile filters; errors name the filter and clause (`user_filters[1].clauses[2]`).
pub(crate) fn compile_filters(
    what: &str,
    filters: &[ScopingFilter],
) -> Result<Vec<CompiledFilter>, Vec<String>> {
    let mut errors = Vec::new();
    let mut out = Vec::with_capacity(filters.len());
    for (fi, filter) in filters.iter().enumerate() {
        if filter.clauses.is_empty() {
            errors.push(format!(
                "{what}[{}]: a filter needs at least one clause (an empty filter would let everyone through)",
                fi + 1
            ));
            continue;
        }
        let mut compiled = Vec::with_capacity(filter.clauses.len());
        for (ci, clause) in filter.clauses.iter().enumerate() {
            match CompiledClause::compile(clause) {
                Ok(c) => compiled.push(c),
                Err(e) => errors.push(format!(
                    "{what}[{}].clauses[{}] ({clause}): {e}",
                    fi + 1,
                    ci + 1
                )),
            }
        }
        out.push(compiled);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Look an attribute up by exact name, then case-insensitively.
fn lookup<'a>(attributes: &'a BTreeMap<String, Value>, name: &str) -> Option<&'a Value> {
    attributes.get(name).or_else(|| {
        attributes
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn texts(value: &Value) -> Vec<String> {
    match value {
        Value::Null => Vec::new(),
        Value::Boolean(b) => vec![b.to_string()],
        Value::Integer(i) => vec![i.to_string()],
        Value::Number(n) => vec![n.to_string()],
        Value::Text(s) => vec![s.clone()],
        Value::TextList(l) => l.clone(),
    }
}

fn is_null(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::Text(s)) => s.is_empty(),
        Some(Value::TextList(l)) => l.is_empty(),
        Some(_) => false,
    }
}

fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Boolean(b) => Some(*b),
        Value::Text(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
        Value::Text(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}
