//! Attribute mappings: how a source object's attributes become the target
//! attributes a connector is asked to write.
//!
//! How the parts fit:
//! - A connector's manifest ships default mappings ([`Mapping`]): a target
//!   attribute and a source expression string. The operator's configuration
//!   overrides them per target with [`MappingOverride`] entries (change the
//!   source, add a default value, change when it applies or its matching
//!   precedence, mark it redacted, or remove it).
//! - [`compile`] merges the two into a [`MappingSet`], parsing every
//!   expression once with [`expr::parse`] and checking that each target is
//!   mapped once and matching precedences are unique. Errors name the target
//!   and, for syntax errors, the column.
//! - [`MappingSet::apply`] evaluates the set against one source object (an
//!   [`EvalContext`]) for a create or an update and returns the
//!   [`MappedObject`] to send: nulls are never sent (Entra's rule; clearing
//!   is a separate, deliberate action), create-only mappings are left out of
//!   updates, "default value if null" applies on create only, and
//!   `IgnoreFlowIfNullOrEmpty` leaves its attribute out.
//!   [`MappingSet::matching`] lists the matching attributes in precedence
//!   order for the matching step.
//! - [`explain`] evaluates the same way but reports every mapping, with its
//!   result, error or reason for being skipped, for `provisio mapping test`;
//!   [`ExplainTable`] renders that report.
//!
//! Bounds: every expression runs under [`expr::Limits`] (a size per value, a
//! total per evaluation, a step budget) whoever wrote it, and [`compile`]
//! refuses an expression whose worst case, bounded from its syntax tree
//! ([`expr::Expr::check_limits`]), exceeds them. [`check_defaults`] runs the
//! same check on a connector's default mappings when its plugin loads (and
//! caps how many it may declare), and [`check_override`] on each of the
//! operator's overrides when the configuration loads, so neither can reach a
//! sync, a dry run included.
//!
//! Values of redacted mappings (`redact = true`, or an expression containing
//! `Redact(...)`) are listed in [`MappedObject::redacted`] so logs show
//! `[REDACTED]` instead.

pub mod expr;
#[cfg(test)]
mod tests;

use crate::model::{ApplyOn, Attribute, Manifest, Mapping, Value};
use expr::{EvalContext, EvalError, Expr, Limits, ParseError, StaticLimitError};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::fmt;

/// Where a mapping's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum MappingSource {
    /// A source attribute, by name (matched case-insensitively).
    Direct(String),
    /// A fixed string.
    Constant(String),
    /// An expression.
    Expression(Expr),
}

impl MappingSource {
    /// `direct`, `constant` or `expression`.
    pub fn kind(&self) -> &'static str {
        match self {
            MappingSource::Direct(_) => "direct",
            MappingSource::Constant(_) => "constant",
            MappingSource::Expression(_) => "expression",
        }
    }

    /// The source as an operator would write it: the attribute name, the
    /// constant, or the expression text.
    pub fn text(&self) -> &str {
        match self {
            MappingSource::Direct(name) => name,
            MappingSource::Constant(c) => c,
            MappingSource::Expression(e) => e.source(),
        }
    }
}

/// One compiled attribute mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeMapping {
    /// Target attribute path, e.g. `name.givenName`.
    pub target: String,
    /// Where the value comes from.
    pub source: MappingSource,
    /// Sent instead of a null value, on create only.
    pub default_if_null: Option<String>,
    /// Whether the mapping applies on update too, or on create only.
    pub apply: ApplyOn,
    /// Matching precedence (1 is tried first), for matching attributes.
    pub matching_precedence: Option<u32>,
    /// Whether its value must be shown as `[REDACTED]` in logs.
    pub redact: bool,
}

/// An operator's change to a connector's default mappings, one per target
/// attribute, as written in the connection's configuration:
///
/// ```toml
/// [[connections.mappings]]
/// target = "displayName"
/// expression = 'Join(" ", [givenName], [surname])'
///
/// [[connections.mappings]]
/// target = "externalId"
/// remove = true
/// ```
///
/// Giving none of `source`, `constant` and `expression` keeps the default's
/// source and changes only the other fields given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingOverride {
    /// Target attribute path.
    pub target: String,
    /// A source attribute name (a direct mapping).
    #[serde(default)]
    pub source: Option<String>,
    /// A constant value.
    #[serde(default)]
    pub constant: Option<String>,
    /// An expression.
    #[serde(default)]
    pub expression: Option<String>,
    /// Value sent on create when the source is null.
    #[serde(default)]
    pub default: Option<String>,
    /// `always` or `create-only`.
    #[serde(default)]
    pub apply: Option<ApplyOn>,
    /// Matching precedence (1 first); 0 makes the attribute non-matching.
    #[serde(default)]
    pub matching_precedence: Option<u32>,
    /// Show the value as `[REDACTED]` in logs.
    #[serde(default)]
    pub redact: Option<bool>,
    /// Drop the connector's default mapping for this target.
    #[serde(default)]
    pub remove: bool,
}

/// A problem with one mapping, naming its target attribute.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MappingError {
    /// The expression does not parse.
    #[error("mapping for '{target}': {error}")]
    Parse {
        /// Target attribute.
        target: String,
        /// The expression text.
        expression: String,
        /// Where and what.
        error: ParseError,
    },
    /// The expression failed on this object's data.
    #[error("mapping for '{target}': {error}")]
    Eval {
        /// Target attribute.
        target: String,
        /// What went wrong.
        error: EvalError,
    },
    /// Two mappings write the same target attribute.
    #[error("'{target}' is mapped twice ({where_})")]
    Duplicate {
        /// Target attribute.
        target: String,
        /// Where the two come from.
        where_: String,
    },
    /// Two matching attributes share a precedence.
    #[error(
        "mapping for '{target}': matching precedence {precedence} is already used by '{other}'"
    )]
    DuplicatePrecedence {
        /// Target attribute.
        target: String,
        /// The shared precedence.
        precedence: u32,
        /// The other target attribute.
        other: String,
    },
    /// The expression's worst case exceeds the evaluation limits.
    #[error("mapping for '{target}': {error}")]
    Limit {
        /// Target attribute.
        target: String,
        /// Which limit, and the bound reached.
        error: StaticLimitError,
    },
    /// Anything else wrong with an override.
    #[error("mapping for '{target}': {message}")]
    Invalid {
        /// Target attribute.
        target: String,
        /// What is wrong.
        message: String,
    },
}

impl MappingError {
    /// The target attribute the error is about.
    pub fn target(&self) -> &str {
        match self {
            MappingError::Parse { target, .. }
            | MappingError::Eval { target, .. }
            | MappingError::Duplicate { target, .. }
            | MappingError::DuplicatePrecedence { target, .. }
            | MappingError::Limit { target, .. }
            | MappingError::Invalid { target, .. } => target,
        }
    }

    /// The 1-based column of a syntax error in its expression.
    pub fn column(&self) -> Option<usize> {
        match self {
            MappingError::Parse { error, .. } => Some(error.column),
            _ => None,
        }
    }

    /// A multi-line rendering: the message, and for syntax errors the
    /// expression with a caret under the column.
    pub fn render(&self) -> String {
        match self {
            MappingError::Parse {
                target,
                expression,
                error,
            } => format!("mapping for '{target}':\n{}", error.render(expression)),
            other => other.to_string(),
        }
    }
}

/// A connection's compiled mappings for one object kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MappingSet {
    mappings: Vec<AttributeMapping>,
}

/// A mapping that reads a source attribute no source record has (see
/// [`MappingSet::unknown_attributes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAttribute {
    /// The mapping's target attribute.
    pub target: String,
    /// The source attribute it reads, as written.
    pub attribute: String,
    /// The closest attribute the records do have, within edit distance 2.
    pub suggestion: Option<String>,
}

impl fmt::Display for UnknownAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the mapping of '{}' reads source attribute [{}], which no source record has",
            self.target, self.attribute
        )?;
        match &self.suggestion {
            Some(s) => write!(f, "; did you mean [{s}]?"),
            None => Ok(()),
        }
    }
}

/// The result of applying a [`MappingSet`] to one source object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MappedObject {
    /// The attributes to send, in mapping order; never null.
    pub attributes: Vec<Attribute>,
    /// Targets whose values must be shown as `[REDACTED]` in logs.
    pub redacted: BTreeSet<String>,
}

/// Parse a mapping's expression and refuse it when its worst case exceeds
/// [`Limits::DEFAULT`].
fn parse_bounded(target: &str, text: &str) -> Result<Expr, MappingError> {
    let e = expr::parse(text).map_err(|error| MappingError::Parse {
        target: target.to_string(),
        expression: text.to_string(),
        error,
    })?;
    e.check_limits(&Limits::DEFAULT)
        .map_err(|error| MappingError::Limit {
            target: target.to_string(),
            error,
        })?;
    Ok(e)
}

/// Turn a manifest's source expression into a [`MappingSource`]: a bare
/// `[attr]` is direct, a lone string literal is a constant.
fn source_from_expression(target: &str, text: &str) -> Result<MappingSource, MappingError> {
    let e = parse_bounded(target, text)?;
    if let Some(name) = e.as_attribute() {
        return Ok(MappingSource::Direct(name.to_string()));
    }
    if let Some(s) = e.as_string_literal() {
        return Ok(MappingSource::Constant(s.to_string()));
    }
    Ok(MappingSource::Expression(e))
}

fn invalid(target: &str, message: impl Into<String>) -> MappingError {
    MappingError::Invalid {
        target: target.to_string(),
        message: message.into(),
    }
}

fn override_source(o: &MappingOverride) -> Result<Option<MappingSource>, MappingError> {
    let given = [
        o.source.is_some(),
        o.constant.is_some(),
        o.expression.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given > 1 {
        return Err(invalid(
            &o.target,
            "give only one of source, constant and expression",
        ));
    }
    if let Some(name) = &o.source {
        let name = name.trim();
        // Tolerate `[mail]` for `mail`.
        let name = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .filter(|n| !n.contains(['[', ']']))
            .unwrap_or(name)
            .trim();
        if name.is_empty() {
            return Err(invalid(&o.target, "source is empty"));
        }
        return Ok(Some(MappingSource::Direct(name.to_string())));
    }
    if let Some(c) = &o.constant {
        return Ok(Some(MappingSource::Constant(c.clone())));
    }
    if let Some(text) = &o.expression {
        let e = parse_bounded(&o.target, text)?;
        return Ok(Some(MappingSource::Expression(e)));
    }
    Ok(None)
}

/// The most default mappings a connector may declare per object kind.
pub const MAX_DEFAULT_MAPPINGS: usize = 256;

/// The most literal regular expressions all of a connector's default
/// mappings may hold together (each expression may hold
/// [`expr::MAX_REGEXES`]).
pub const MAX_MANIFEST_REGEXES: usize = 64;

/// Why a connector's default mappings are refused when its plugin loads.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DefaultsError {
    /// One default mapping does not parse or is over the limits.
    #[error("default {kind} {error}")]
    Mapping {
        /// `user` or `group`.
        kind: &'static str,
        /// What is wrong, naming the target attribute.
        error: MappingError,
    },
    /// The manifest declares too much.
    #[error("the connector declares {count} {what}, more than the limit of {limit}")]
    TooMany {
        /// What was counted.
        what: &'static str,
        /// How many it declares.
        count: usize,
        /// The limit.
        limit: usize,
    },
}

impl DefaultsError {
    /// The target attribute of the refused mapping, if one.
    pub fn target(&self) -> Option<&str> {
        match self {
            DefaultsError::Mapping { error, .. } => Some(error.target()),
            DefaultsError::TooMany { .. } => None,
        }
    }
}

/// Check a connector's default mappings on their own, before any operator
/// has seen them: each must parse and its worst case must be within
/// [`Limits::DEFAULT`] (see [`expr::Expr::check_limits`]); at most
/// [`MAX_DEFAULT_MAPPINGS`] per kind and [`MAX_MANIFEST_REGEXES`] regular
/// expressions in all. Called when a plugin loads, so an oversized default
/// mapping is refused there, before a sync or a dry run can evaluate it.
pub fn check_defaults(manifest: &Manifest) -> Result<(), DefaultsError> {
    let mut regexes = 0usize;
    for (kind, mappings) in [
        ("user", &manifest.user_mappings),
        ("group", &manifest.group_mappings),
    ] {
        if mappings.len() > MAX_DEFAULT_MAPPINGS {
            return Err(DefaultsError::TooMany {
                what: if kind == "user" {
                    "default user mappings"
                } else {
                    "default group mappings"
                },
                count: mappings.len(),
                limit: MAX_DEFAULT_MAPPINGS,
            });
        }
        for m in mappings {
            let e = parse_bounded(&m.target, &m.source)
                .map_err(|error| DefaultsError::Mapping { kind, error })?;
            regexes += e.worst_case().regexes;
            if regexes > MAX_MANIFEST_REGEXES {
                return Err(DefaultsError::TooMany {
                    what: "regular expressions in its default mappings",
                    count: regexes,
                    limit: MAX_MANIFEST_REGEXES,
                });
            }
        }
    }
    Ok(())
}

/// Check one operator override on its own (its expression parses and is
/// within [`Limits::DEFAULT`]), for the configuration to refuse a bad one
/// when it loads.
pub fn check_override(o: &MappingOverride) -> Result<(), MappingError> {
    override_source(o).map(|_| ())
}

/// Merge a connector's default mappings with the operator's overrides.
///
/// Targets are compared case-insensitively (SCIM attribute names are). An
/// override replaces the fields it gives of the default for its target, adds
/// a mapping when there is no default, or with `remove = true` drops the
/// default. Returns the first error found; [`compile_all`] returns them all.
pub fn compile(
    defaults: &[Mapping],
    overrides: &[MappingOverride],
) -> Result<MappingSet, MappingError> {
    compile_all(defaults, overrides).map_err(|mut errors| {
        if errors.is_empty() {
            invalid("", "invalid mappings")
        } else {
            errors.remove(0)
        }
    })
}

/// Like [`compile`], but reports every error.
pub fn compile_all(
    defaults: &[Mapping],
    overrides: &[MappingOverride],
) -> Result<MappingSet, Vec<MappingError>> {
    let mut errors = Vec::new();
    let mut mappings: Vec<AttributeMapping> = Vec::new();
    let find = |mappings: &[AttributeMapping], target: &str| {
        mappings
            .iter()
            .position(|m| m.target.eq_ignore_ascii_case(target))
    };
    for d in defaults {
        if find(&mappings, &d.target).is_some() {
            errors.push(MappingError::Duplicate {
                target: d.target.clone(),
                where_: "twice in the connector's defaults".into(),
            });
            continue;
        }
        match source_from_expression(&d.target, &d.source) {
            Ok(source) => mappings.push(AttributeMapping {
                target: d.target.clone(),
                source,
                default_if_null: None,
                apply: d.apply,
                matching_precedence: d.matching_precedence,
                redact: false,
            }),
            Err(e) => errors.push(e),
        }
    }
    let mut overridden: Vec<String> = Vec::new();
    for o in overrides {
        if o.target.trim().is_empty() {
            errors.push(invalid("", "an override has an empty target"));
            continue;
        }
        if overridden.iter().any(|t| t.eq_ignore_ascii_case(&o.target)) {
            errors.push(MappingError::Duplicate {
                target: o.target.clone(),
                where_: "twice in the configuration's overrides".into(),
            });
            continue;
        }
        overridden.push(o.target.clone());
        let existing = find(&mappings, &o.target);
        if o.remove {
            let extra = o.source.is_some()
                || o.constant.is_some()
                || o.expression.is_some()
                || o.default.is_some()
                || o.apply.is_some()
                || o.matching_precedence.is_some()
                || o.redact.is_some();
            if extra {
                errors.push(invalid(&o.target, "remove = true takes no other fields"));
            } else if let Some(i) = existing {
                mappings.remove(i);
            } else {
                errors.push(invalid(
                    &o.target,
                    "remove = true, but the connector has no default mapping for it",
                ));
            }
            continue;
        }
        let source = match override_source(o) {
            Ok(s) => s,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let precedence = o.matching_precedence.map(|p| (p != 0).then_some(p));
        match existing {
            Some(i) => {
                let m = &mut mappings[i];
                if let Some(source) = source {
                    m.source = source;
                }
                if o.default.is_some() {
                    m.default_if_null.clone_from(&o.default);
                }
                if let Some(apply) = o.apply {
                    m.apply = apply;
                }
                if let Some(p) = precedence {
                    m.matching_precedence = p;
                }
                if let Some(r) = o.redact {
                    m.redact = r;
                }
            }
            None => {
                let Some(source) = source else {
                    errors.push(invalid(
                        &o.target,
                        "the connector has no default mapping for it, so give one of source, \
                         constant or expression",
                    ));
                    continue;
                };
                mappings.push(AttributeMapping {
                    target: o.target.clone(),
                    source,
                    default_if_null: o.default.clone(),
                    apply: o.apply.unwrap_or(ApplyOn::Always),
                    matching_precedence: precedence.flatten(),
                    redact: o.redact.unwrap_or(false),
                });
            }
        }
    }
    for (i, m) in mappings.iter().enumerate() {
        if let Some(p) = m.matching_precedence
            && let Some(other) = mappings[..i]
                .iter()
                .find(|o| o.matching_precedence == Some(p))
        {
            errors.push(MappingError::DuplicatePrecedence {
                target: m.target.clone(),
                precedence: p,
                other: other.target.clone(),
            });
        }
    }
    if errors.is_empty() {
        Ok(MappingSet { mappings })
    } else {
        Err(errors)
    }
}

/// Why a mapping produced no attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// A create-only mapping during an update.
    CreateOnly,
    /// The value was null (nulls are never sent).
    Null,
    /// `IgnoreFlowIfNullOrEmpty` met a null or empty value.
    IgnoreFlow,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::CreateOnly => "create-only mapping, not applied on update",
            SkipReason::Null => "value is null; nulls are not sent",
            SkipReason::IgnoreFlow => "IgnoreFlowIfNullOrEmpty: null or empty, not sent",
        })
    }
}

/// What one mapping did for one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The value to send.
    Value(Value),
    /// The source was null and "default value if null" was sent (on create).
    Defaulted(Value),
    /// Nothing sent, for this reason.
    Skipped(SkipReason),
    /// The mapping failed on this object's data.
    Failed(EvalError),
}

impl AttributeMapping {
    /// Whether values of this mapping must be redacted in logs.
    pub fn is_redacted(&self) -> bool {
        self.redact || matches!(&self.source, MappingSource::Expression(e) if e.is_redacted())
    }

    /// Evaluate this mapping for one object.
    pub fn evaluate(&self, ctx: &dyn EvalContext, on_create: bool) -> Outcome {
        if !on_create && self.apply == ApplyOn::CreateOnly {
            return Outcome::Skipped(SkipReason::CreateOnly);
        }
        let value = match &self.source {
            MappingSource::Direct(name) => ctx.attribute(name).unwrap_or(Value::Null),
            MappingSource::Constant(c) => Value::Text(c.clone()),
            MappingSource::Expression(e) => match e.eval(ctx) {
                Ok(v) => v,
                Err(EvalError::IgnoreFlow) => return Outcome::Skipped(SkipReason::IgnoreFlow),
                Err(err) => return Outcome::Failed(err),
            },
        };
        let is_null = match &value {
            Value::Null => true,
            Value::TextList(l) => l.is_empty(),
            _ => false,
        };
        if !is_null {
            return Outcome::Value(value);
        }
        match (&self.default_if_null, on_create) {
            (Some(d), true) => Outcome::Defaulted(Value::Text(d.clone())),
            _ => Outcome::Skipped(SkipReason::Null),
        }
    }
}

impl MappingSet {
    /// The mappings, in order.
    pub fn mappings(&self) -> &[AttributeMapping] {
        &self.mappings
    }

    /// The mapping for a target attribute (case-insensitive).
    pub fn get(&self, target: &str) -> Option<&AttributeMapping> {
        self.mappings
            .iter()
            .find(|m| m.target.eq_ignore_ascii_case(target))
    }

    /// Compute the attributes to send for one source object, on create or
    /// on update. Every failing mapping is reported.
    pub fn apply(
        &self,
        ctx: &dyn EvalContext,
        on_create: bool,
    ) -> Result<MappedObject, Vec<MappingError>> {
        let mut out = MappedObject::default();
        let mut errors = Vec::new();
        for m in &self.mappings {
            match m.evaluate(ctx, on_create) {
                Outcome::Value(value) | Outcome::Defaulted(value) => {
                    if m.is_redacted() {
                        out.redacted.insert(m.target.clone());
                    }
                    out.attributes.push(Attribute {
                        name: m.target.clone(),
                        value,
                    });
                }
                Outcome::Skipped(_) => {}
                Outcome::Failed(error) => errors.push(MappingError::Eval {
                    target: m.target.clone(),
                    error,
                }),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    /// The source attributes each mapping reads, as `(target, attribute)`
    /// pairs in mapping order (a direct mapping reads its attribute, an
    /// expression every `[attribute]` in it, a constant nothing).
    pub fn source_attributes(&self) -> Vec<(&str, String)> {
        let mut out = Vec::new();
        for m in &self.mappings {
            match &m.source {
                MappingSource::Direct(name) => out.push((m.target.as_str(), name.clone())),
                MappingSource::Expression(e) => out.extend(
                    e.attributes()
                        .into_iter()
                        .map(|name| (m.target.as_str(), name)),
                ),
                MappingSource::Constant(_) => {}
            }
        }
        out
    }

    /// Mappings that read a source attribute none of `known` (the attribute
    /// names the source's records have; compared case-insensitively, as
    /// evaluation compares them) is, each with the closest known name within
    /// edit distance 2 as a suggestion. A typo such as `[jobTitel]` would
    /// otherwise just map to nothing.
    pub fn unknown_attributes<'a>(&'a self, known: &'a BTreeSet<String>) -> Vec<UnknownAttribute> {
        let lower: Vec<(String, &String)> = known.iter().map(|k| (k.to_lowercase(), k)).collect();
        self.source_attributes()
            .into_iter()
            .filter(|(_, a)| !lower.iter().any(|(l, _)| *l == a.to_lowercase()))
            .map(|(target, attribute)| {
                let a = attribute.to_lowercase();
                let suggestion = lower
                    .iter()
                    .map(|(l, k)| (expr::edit_distance(&a, l), *k))
                    .filter(|(d, _)| *d <= 2)
                    .min_by_key(|(d, _)| *d)
                    .map(|(_, k)| k.clone());
                UnknownAttribute {
                    target: target.to_string(),
                    attribute,
                    suggestion,
                }
            })
            .collect()
    }

    /// The matching attributes, lowest precedence number (tried first) first.
    pub fn matching(&self) -> Vec<&AttributeMapping> {
        let mut m: Vec<&AttributeMapping> = self
            .mappings
            .iter()
            .filter(|m| m.matching_precedence.is_some())
            .collect();
        m.sort_by_key(|m| m.matching_precedence);
        m
    }
}

/// One mapping's part in `provisio mapping test`.
#[derive(Debug, Clone, PartialEq)]
pub struct Explained {
    /// Target attribute.
    pub target: String,
    /// `direct`, `constant` or `expression`.
    pub kind: &'static str,
    /// The source attribute, constant or expression text.
    pub source: String,
    /// Matching precedence, if a matching attribute.
    pub matching_precedence: Option<u32>,
    /// Whether the value is redacted in logs (and in the table by default).
    pub redacted: bool,
    /// What happened.
    pub outcome: Outcome,
}

/// Evaluate every mapping of `set` for one object and say what each did.
pub fn explain(set: &MappingSet, ctx: &dyn EvalContext, on_create: bool) -> Vec<Explained> {
    set.mappings
        .iter()
        .map(|m| Explained {
            target: m.target.clone(),
            kind: m.source.kind(),
            source: m.source.text().to_string(),
            matching_precedence: m.matching_precedence,
            redacted: m.is_redacted(),
            outcome: m.evaluate(ctx, on_create),
        })
        .collect()
}

/// A plain-text table of [`Explained`] rows: target, kind, source, result.
/// Redacted values show as `[REDACTED]` unless revealed.
#[derive(Debug, Clone, Copy)]
pub struct ExplainTable<'a> {
    rows: &'a [Explained],
    reveal: bool,
}

impl<'a> ExplainTable<'a> {
    /// A table of these rows, redacting values.
    pub fn new(rows: &'a [Explained]) -> Self {
        ExplainTable {
            rows,
            reveal: false,
        }
    }

    /// Show redacted values too (for an operator testing at a terminal).
    pub fn reveal_redacted(mut self, reveal: bool) -> Self {
        self.reveal = reveal;
        self
    }
}

const MAX_SOURCE_WIDTH: usize = 60;

fn shorten(s: &str, width: usize) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= width {
        one_line
    } else {
        let mut out: String = one_line.chars().take(width.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

fn show_value(v: &Value) -> String {
    v.to_json().to_string()
}

impl fmt::Display for ExplainTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rows: Vec<[String; 4]> = vec![[
            "TARGET".into(),
            "KIND".into(),
            "SOURCE".into(),
            "RESULT".into(),
        ]];
        for r in self.rows {
            let target = match r.matching_precedence {
                Some(p) => format!("{} (match {p})", r.target),
                None => r.target.clone(),
            };
            let value = |v: &Value| {
                if r.redacted && !self.reveal {
                    "[REDACTED]".to_string()
                } else {
                    show_value(v)
                }
            };
            let result = match &r.outcome {
                Outcome::Value(v) => value(v),
                Outcome::Defaulted(v) => format!("{} (default: source is null)", value(v)),
                Outcome::Skipped(why) => format!("skipped: {why}"),
                Outcome::Failed(e) => format!("error: {e}"),
            };
            // Targets, expressions and values may come from the plugin's
            // default mappings or the source: shown escaped.
            rows.push([
                crate::untrusted::escape(&target),
                r.kind.to_string(),
                shorten(&crate::untrusted::escape(&r.source), MAX_SOURCE_WIDTH),
                shorten(&crate::untrusted::escape(&result), 200),
            ]);
        }
        let mut widths = [0usize; 3];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row.iter()) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in &rows {
            let [a, b, c, d] = row;
            writeln!(
                f,
                "{a:<wa$}  {b:<wb$}  {c:<wc$}  {d}",
                wa = widths[0],
                wb = widths[1],
                wc = widths[2]
            )?;
        }
        Ok(())
    }
}
