//! The parser: source text to [`Expr`], with 1-based character columns in
//! every error.
//!
//! Grammar (whitespace may appear between any two tokens):
//!
//! ```text
//! expr     := operand [ ("=" | "<>") operand ]
//! operand  := "[" name "]" | string | number | "true" | "false"
//!           | "vbBinaryCompare" | "vbTextCompare" | Name "(" args ")"
//! args     := ε | slot ("," slot)*        -- a slot may be empty (null)
//! string   := '"' ( '\"' | '\\' | any other character )* '"'
//! number   := ["-"] digits ["." digits] | "&H" hexdigits
//! ```

use super::functions::{self, Func};
use super::{Call, Expr, MAX_DEPTH, MAX_LEN, MAX_REGEXES, Node, ParseError};
use crate::model::Value;

/// Parse an expression.
///
/// Checks syntax, function names and argument counts, and compiles regular
/// expressions given as literals, so every error that does not depend on
/// data is found here.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    if chars.len() > MAX_LEN {
        return Err(ParseError {
            column: MAX_LEN + 1,
            message: format!(
                "the expression is {} characters long; the limit is {MAX_LEN}",
                chars.len()
            ),
        });
    }
    let mut p = Parser {
        chars,
        pos: 0,
        regexes: 0,
    };
    p.skip_ws();
    if p.at_end() {
        return Err(p.error_here("the expression is empty"));
    }
    let root = p.expr(0)?;
    p.skip_ws();
    if let Some(c) = p.peek() {
        return Err(p.error_here(format!(
            "unexpected {} after the end of the expression",
            describe(c)
        )));
    }
    Ok(Expr {
        root,
        source: src.to_string(),
    })
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    /// Literal regular expressions compiled so far.
    regexes: usize,
}

fn err(column: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        column,
        message: message.into(),
    }
}

fn describe(c: char) -> String {
    match c {
        '\n' => "a line break".to_string(),
        '\t' => "a tab".to_string(),
        c if c.is_control() => format!("control character U+{:04X}", c as u32),
        c => format!("'{c}'"),
    }
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn column(&self) -> usize {
        self.pos + 1
    }

    fn error_here(&self, message: impl Into<String>) -> ParseError {
        err(self.column(), message)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn expr(&mut self, depth: usize) -> Result<Node, ParseError> {
        let lhs = self.operand(depth)?;
        self.skip_ws();
        let equal = match (self.peek(), self.chars.get(self.pos + 1).copied()) {
            (Some('='), _) => {
                self.pos += 1;
                true
            }
            (Some('<'), Some('>')) => {
                self.pos += 2;
                false
            }
            _ => return Ok(lhs),
        };
        self.skip_ws();
        let rhs = self.operand(depth)?;
        self.skip_ws();
        if matches!(self.peek(), Some('=') | Some('<')) {
            return Err(
                self.error_here("comparisons cannot be chained; compare two values at a time")
            );
        }
        Ok(Node::Compare {
            equal,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        })
    }

    fn operand(&mut self, depth: usize) -> Result<Node, ParseError> {
        match self.peek() {
            None => Err(self.error_here("unexpected end of the expression; expected a value")),
            Some('[') => self.attribute(),
            Some('"') => self.string(),
            Some(c) if c.is_ascii_digit() => self.number(),
            Some('-') if self.chars.get(self.pos + 1).is_some_and(char::is_ascii_digit) => {
                self.number()
            }
            Some('&') if matches!(self.chars.get(self.pos + 1), Some('H' | 'h')) => self.hex(),
            Some(c) if c.is_alphabetic() || c == '_' => self.name(depth),
            Some(c @ (',' | ')')) => Err(self.error_here(format!(
                "expected a value, found '{c}' (an empty argument is only allowed inside a function call)"
            ))),
            Some(']') => Err(self.error_here("unexpected ']' without a matching '['")),
            Some('\'') => Err(self.error_here(
                "string literals use double quotes: \"text\", not 'text'",
            )),
            Some(c) => Err(self.error_here(format!("unexpected {}", describe(c)))),
        }
    }

    /// `[name]`; brackets may nest (`[emails[type eq "work"].value]`).
    fn attribute(&mut self) -> Result<Node, ParseError> {
        let start = self.column();
        self.pos += 1;
        let mut depth = 1usize;
        let mut in_quote = false;
        let mut name = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(err(
                    start,
                    "unterminated attribute reference: no ']' closes this '['",
                ));
            };
            self.pos += 1;
            if in_quote {
                if c == '\\' {
                    if let Some(n) = self.peek() {
                        name.push(c);
                        name.push(n);
                        self.pos += 1;
                        continue;
                    }
                } else if c == '"' {
                    in_quote = false;
                }
            } else {
                match c {
                    '"' => in_quote = true,
                    '[' => depth += 1,
                    ']' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
            }
            name.push(c);
        }
        let name = name.trim();
        if name.is_empty() {
            return Err(err(start, "empty attribute name '[]'"));
        }
        Ok(Node::Attr(name.to_string()))
    }

    fn string(&mut self) -> Result<Node, ParseError> {
        let start = self.column();
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(err(
                    start,
                    "unterminated string literal: no closing '\"' for this one (write \\\" for a quote inside a string)",
                ));
            };
            self.pos += 1;
            match c {
                '"' => break,
                '\\' => match self.peek() {
                    Some(e @ ('"' | '\\')) => {
                        out.push(e);
                        self.pos += 1;
                    }
                    // Any other escape keeps its backslash, so regular
                    // expressions such as "\d+" need no doubling.
                    _ => out.push('\\'),
                },
                c => out.push(c),
            }
        }
        Ok(Node::Lit(Value::Text(out)))
    }

    fn number(&mut self) -> Result<Node, ParseError> {
        let start = self.pos;
        if self.peek() == Some('-') {
            self.pos += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let mut fractional = false;
        if self.peek() == Some('.')
            && self
                .chars
                .get(self.pos + 1)
                .is_some_and(char::is_ascii_digit)
        {
            fractional = true;
            self.pos += 1;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
        }
        if self
            .peek()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
        {
            return Err(self.error_here(format!(
                "unexpected {} in a number",
                describe(self.peek().unwrap_or(' '))
            )));
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        let value = if fractional {
            text.parse::<f64>().ok().map(Value::Number)
        } else {
            text.parse::<i64>().ok().map(Value::Integer)
        };
        value
            .map(Node::Lit)
            .ok_or_else(|| err(start + 1, format!("number {text} is out of range")))
    }

    /// A VBA hexadecimal literal such as `&HF7`.
    fn hex(&mut self) -> Result<Node, ParseError> {
        let start = self.column();
        self.pos += 2;
        let digits_start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
            self.pos += 1;
        }
        let digits: String = self.chars[digits_start..self.pos].iter().collect();
        if digits.is_empty() {
            return Err(err(start, "expected hexadecimal digits after &H"));
        }
        i64::from_str_radix(&digits, 16)
            .map(|v| Node::Lit(Value::Integer(v)))
            .map_err(|_| err(start, format!("number &H{digits} is out of range")))
    }

    /// A function call, or one of the few bare names (`true`, `false`,
    /// `vbBinaryCompare`, `vbTextCompare`).
    fn name(&mut self, depth: usize) -> Result<Node, ParseError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            self.pos += 1;
        }
        let name: String = self.chars[start..self.pos].iter().collect();
        let column = start + 1;
        self.skip_ws();
        if self.peek() != Some('(') {
            let lower = name.to_ascii_lowercase();
            return match lower.as_str() {
                "true" => Ok(Node::Lit(Value::Boolean(true))),
                "false" => Ok(Node::Lit(Value::Boolean(false))),
                "vbbinarycompare" => Ok(Node::Lit(Value::Text("vbBinaryCompare".into()))),
                "vbtextcompare" => Ok(Node::Lit(Value::Text("vbTextCompare".into()))),
                _ if functions::lookup(&name).is_some() => {
                    Err(self.error_here(format!("expected '(' after the function name {name}")))
                }
                _ => Err(err(
                    column,
                    format!(
                        "unknown name '{name}': write an attribute as [{name}] and text as \"{name}\""
                    ),
                )),
            };
        }
        let spec = match functions::lookup(&name) {
            Some(spec) => spec,
            None => return Err(err(column, functions::unknown_function_message(&name))),
        };
        if depth >= MAX_DEPTH {
            return Err(err(
                column,
                format!(
                    "function calls are nested {} deep here, more than the limit of {MAX_DEPTH} \
                     (max_depth); split the mapping or flatten the nesting",
                    depth + 1
                ),
            ));
        }
        self.pos += 1; // '('
        let mut args = Vec::new();
        let mut arg_columns = Vec::new();
        self.skip_ws();
        if self.peek() == Some(')') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                arg_columns.push(self.column());
                if matches!(self.peek(), Some(',') | Some(')')) {
                    args.push(Node::Lit(Value::Null));
                } else if self.at_end() {
                    return Err(self.error_here(format!(
                        "unexpected end of the expression in argument {} of {}",
                        args.len() + 1,
                        spec.name
                    )));
                } else {
                    args.push(self.expr(depth + 1)?);
                }
                self.skip_ws();
                match self.peek() {
                    Some(',') => self.pos += 1,
                    Some(')') => {
                        self.pos += 1;
                        break;
                    }
                    None => {
                        return Err(self.error_here(format!(
                            "unexpected end of the expression: expected ',' or ')' after argument {} of {}",
                            args.len(),
                            spec.name
                        )));
                    }
                    Some(_) => {
                        return Err(self.error_here(format!(
                            "expected ',' or ')' after argument {} of {}",
                            args.len(),
                            spec.name
                        )));
                    }
                }
            }
        }
        if let Err(message) = spec.check_arity(args.len()) {
            return Err(err(column, message));
        }
        let mut regex = None;
        if spec.func == Func::Replace
            && let (Some(Node::Lit(Value::Text(pattern))), Some(col)) =
                (args.get(2), arg_columns.get(2))
        {
            self.regexes += 1;
            if self.regexes > MAX_REGEXES {
                return Err(err(
                    *col,
                    format!(
                        "this is regular expression number {} of the expression, more than the \
                         limit of {MAX_REGEXES} (max_regexes)",
                        self.regexes
                    ),
                ));
            }
            regex = Some(functions::compile_regex(pattern).map_err(|m| err(*col, m))?);
        }
        Ok(Node::Call(Box::new(Call {
            func: spec.func,
            args,
            column,
            regex,
        })))
    }
}
