use super::*;
use chrono::TimeZone;

fn t(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn list(items: &[&str]) -> Value {
    Value::TextList(items.iter().map(|s| s.to_string()).collect())
}

const GUID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

fn ctx() -> MapContext {
    MapContext::new()
        .at(Utc.with_ymd_and_hms(2024, 5, 31, 8, 30, 0).unwrap())
        .with_guid(GUID)
        .with("givenName", t("John"))
        .with("surname", t("Doe"))
        .with("mailNickname", t("john_doe72"))
        .with("country", t("USA"))
        .with("department", t("Sales"))
        .with("empty", t(""))
        .with("IsSoftDeleted", Value::Boolean(false))
        .with("userAccountControl", Value::Integer(514))
        .with(
            "proxyAddresses",
            list(&["SMTP:j@x.com", "smtp:jd@x.com", "smtp:d@x.com"]),
        )
        .with("dupes", list(&["a", "b", "a", "c", "b"]))
        .with("appRoleAssignments", list(&["User"]))
        .with("twoRoles", list(&["User", "Admin"]))
        .with("domain", t("fabrikam.com"))
        .with("extensionAttribute1", t("20150123105347.1Z"))
        .with("StatusHireDate", t("2017-03-01T08:00:00-08:00"))
}

fn ev_in(c: &MapContext, src: &str) -> Value {
    let e = parse(src).unwrap_or_else(|e| panic!("{src}: {}", e.render(src)));
    e.eval(c).unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn ev(src: &str) -> Value {
    ev_in(&ctx(), src)
}

fn ev_err(src: &str) -> EvalError {
    let e = parse(src).unwrap_or_else(|e| panic!("{src}: {}", e.render(src)));
    match e.eval(&ctx()) {
        Ok(v) => panic!("{src}: expected an error, got {v:?}"),
        Err(e) => e,
    }
}

fn ev_msg(src: &str) -> String {
    ev_err(src).to_string()
}

fn perr(src: &str) -> ParseError {
    match parse(src) {
        Ok(e) => panic!("{src}: expected a parse error, got {e:?}"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------- syntax

#[test]
fn literals_and_escapes() {
    assert_eq!(ev(r#""a\"b\\c""#), t(r#"a"b\c"#));
    // Other backslashes are kept, so regular expressions read naturally.
    assert_eq!(ev(r#""\d+\.""#), t(r"\d+\."));
    assert_eq!(ev("42"), Value::Integer(42));
    assert_eq!(ev("-3"), Value::Integer(-3));
    assert_eq!(ev("2.5"), Value::Number(2.5));
    assert_eq!(ev("&HF7"), Value::Integer(0xF7));
    assert_eq!(ev("TRUE"), Value::Boolean(true));
    assert_eq!(ev("false"), Value::Boolean(false));
    assert_eq!(ev(r#""""#), t(""));
    assert_eq!(ev(r#""ünïcödé ✓""#), t("ünïcödé ✓"));
}

#[test]
fn attribute_references() {
    assert_eq!(ev("[givenName]"), t("John"));
    // Case-insensitive, like Entra.
    assert_eq!(ev("[GIVENNAME]"), t("John"));
    assert_eq!(ev("[ givenName ]"), t("John"));
    assert_eq!(ev("[missing]"), Value::Null);
    let c = ctx().with("emails[type eq \"work\"].value", t("w@x.com"));
    assert_eq!(ev_in(&c, r#"[emails[type eq "work"].value]"#), t("w@x.com"));
}

#[test]
fn function_names_are_case_insensitive_and_whitespace_is_free() {
    assert_eq!(ev(r#"toupper("a")"#), t("A"));
    assert_eq!(ev(r#"TOUPPER ( "a" )"#), t("A"));
    assert_eq!(
        ev("Join(\n  \" \",\n\t[givenName] ,\r\n [surname]\n)"),
        t("John Doe")
    );
}

#[test]
fn empty_argument_slots_are_null() {
    assert_eq!(
        ev(r#"Switch([IsSoftDeleted], , "False", "True", "True", "False")"#),
        t("True")
    );
    assert_eq!(ev("Coalesce([missing], )"), Value::Null);
    assert_eq!(ev(r#"Coalesce(,"x")"#), t("x"));
}

#[test]
fn comparisons() {
    assert_eq!(ev(r#"[country] = "USA""#), Value::Boolean(true));
    assert_eq!(ev(r#"[country]="usa""#), Value::Boolean(false));
    assert_eq!(ev(r#"[country] <> "USA""#), Value::Boolean(false));
    assert_eq!(ev(r#"1 = "1""#), Value::Boolean(true));
    assert_eq!(ev(r#"[missing] = [alsoMissing]"#), Value::Boolean(true));
    assert_eq!(ev(r#"[missing] = """#), Value::Boolean(false));
    assert_eq!(ev(r#"[IsSoftDeleted] = "False""#), Value::Boolean(true));
    assert!(
        perr(r#"[a] = [b] = [c]"#)
            .message
            .contains("cannot be chained")
    );
}

#[test]
fn parse_error_columns() {
    let e = perr(r#"Mid("abc", 1 2)"#);
    assert_eq!(e.column, 14);
    assert_eq!(e.message, "expected ',' or ')' after argument 2 of Mid");
    assert_eq!(
        e.to_string(),
        "column 14: expected ',' or ')' after argument 2 of Mid"
    );

    let e = perr(r#"Replace([x], "a" "b", , , , , )"#);
    assert_eq!(
        e.to_string(),
        "column 18: expected ',' or ')' after argument 2 of Replace"
    );

    // Columns count characters, not bytes.
    let e = perr(r#"Join("é", "ü" "x")"#);
    assert_eq!(e.column, 15);

    let e = perr(r#"Join(",", "abc"#);
    assert_eq!(e.column, 11);
    assert!(e.message.contains("unterminated string"), "{e}");

    let e = perr("Join(\",\", [abc");
    assert_eq!(e.column, 11);
    assert!(e.message.contains("unterminated attribute"), "{e}");

    let e = perr("[a] [b]");
    assert_eq!(e.column, 5);
    assert!(e.message.contains("after the end"), "{e}");

    let e = perr("ToLower([a]");
    assert_eq!(e.column, 12);
    assert!(e.message.contains("end of the expression"), "{e}");

    let e = perr("");
    assert_eq!(e.column, 1);
    let e = perr("   ");
    assert!(e.message.contains("empty"), "{e}");
    assert_eq!(perr("[]").message, "empty attribute name '[]'");
    assert!(perr("'x'").message.contains("double quotes"));
    assert!(perr("]").message.contains("']'"));
    assert!(perr("12abc").message.contains("in a number"));
    assert!(
        perr("99999999999999999999")
            .message
            .contains("out of range")
    );
    assert!(perr("&H").message.contains("hexadecimal"));
}

#[test]
fn unknown_functions_and_names() {
    let e = perr(r#"Left([a], 1) = Jion(",", "a")"#);
    assert_eq!(e.column, 16);
    assert_eq!(e.message, "unknown function 'Jion'; did you mean Join?");
    assert_eq!(
        perr("Frobnicate(1)").message,
        "unknown function 'Frobnicate'"
    );
    let e = perr("AppRoleAssignmentsComplex([appRoleAssignments])");
    assert!(e.message.contains("not supported"), "{e}");
    let e = perr("givenName");
    assert!(e.message.contains("[givenName]"), "{e}");
    let e = perr("Join");
    assert!(e.message.contains("expected '('"), "{e}");
}

#[test]
fn argument_counts_are_checked_at_parse_time() {
    let e = perr(r#"Mid("a", 1)"#);
    assert_eq!(e.column, 1);
    assert_eq!(
        e.message,
        "Mid takes 3 arguments: Mid(source, start, length); found 2"
    );
    let e = perr(r#"Join(" ", ToUpper())"#);
    assert_eq!(e.column, 11);
    assert!(
        e.message.starts_with("ToUpper takes 1 to 2 arguments"),
        "{e}"
    );
    assert!(perr("Now(1)").message.starts_with("Now takes 0 arguments"));
    assert!(
        perr(r#"Join(",")"#)
            .message
            .starts_with("Join takes at least 2 arguments")
    );
    assert!(
        perr(r#"Switch([a], "d", "k")"#)
            .message
            .starts_with("Switch takes source, defaultValue and key/value pairs")
    );
    assert!(
        perr(r#"Replace([a], "x", , , "y")"#)
            .message
            .contains("7 arguments")
    );
    assert!(
        perr("IIF([a], 1)")
            .message
            .contains("IIF takes 3 arguments")
    );
    // Empty slots count as arguments.
    assert!(parse("FormatDateTime([a], , \"yyyy\", \"yy\")").is_ok());
    assert!(parse("Guid()").is_ok());
    assert!(parse("Now( )").is_ok());
}

#[test]
fn literal_regular_expressions_are_checked_at_parse_time() {
    let src = r#"Replace([a], , "(unclosed", , "", , )"#;
    let e = perr(src);
    assert_eq!(e.column, 16);
    assert!(e.message.contains("invalid regular expression"), "{e}");
    assert!(!e.message.contains('\n'));
}

#[test]
fn length_limit() {
    let ok = format!("\"{}\"", "x".repeat(MAX_LEN - 2));
    assert!(parse(&ok).is_ok());
    let too_long = format!("\"{}\"", "x".repeat(MAX_LEN - 1));
    let e = perr(&too_long);
    assert_eq!(e.column, MAX_LEN + 1);
    assert!(e.message.contains("10000"), "{e}");
}

#[test]
fn deep_nesting() {
    let nested = |n: usize| format!("{}[a]{}", "ToLower(".repeat(n), ")".repeat(n));
    let c = ctx().with("a", t("ABC"));
    assert_eq!(ev_in(&c, &nested(MAX_DEPTH)), t("abc"));
    let e = perr(&nested(MAX_DEPTH + 1));
    assert!(
        e.message.contains("more than the limit of 32 (max_depth)"),
        "{e}"
    );
    // Far deeper than the limit still fails cleanly (no stack overflow).
    let e = perr(&nested(1000));
    assert!(
        e.message.contains("more than the limit of 32 (max_depth)"),
        "{e}"
    );
    let deep_parens = "(".repeat(5000);
    assert!(parse(&deep_parens).is_err());
}

#[test]
fn render_puts_a_caret_under_the_column() {
    let src = r#"Mid("abc", 1 2)"#;
    let e = perr(src);
    assert_eq!(
        e.render(src),
        "Mid(\"abc\", 1 2)\n             ^ column 14: expected ',' or ')' after argument 2 of Mid"
    );
    let src = "Join(\",\",\n  [a] [b])";
    let e = perr(src);
    assert_eq!(e.column, 17);
    assert_eq!(
        e.render(src),
        "  [a] [b])\n      ^ column 17: expected ',' or ')' after argument 2 of Join"
    );
    // Out-of-range columns do not panic.
    let odd = ParseError {
        column: 99,
        message: "x".into(),
    };
    assert!(odd.render("ab\ncd").starts_with("cd\n"));
    let zero = ParseError {
        column: 0,
        message: "x".into(),
    };
    assert!(zero.render("").contains('^'));
}

#[test]
fn attributes_and_redaction_are_reported() {
    let e = parse(r#"Join(" ", [givenName], [Surname], ToLower([GIVENNAME]))"#).unwrap();
    assert_eq!(e.attributes(), vec!["givenName", "Surname"]);
    assert!(!e.is_redacted());
    let e = parse(r#"Append(Redact([password]), "!")"#).unwrap();
    assert!(e.is_redacted());
    assert_eq!(e.attributes(), vec!["password"]);
    assert_eq!(e.to_string(), r#"Append(Redact([password]), "!")"#);
}

#[test]
fn eval_errors_name_function_and_column() {
    let e = ev_err(r#"Join(",", Mid("abc", 0, 1))"#);
    assert_eq!(
        e,
        EvalError::Function {
            function: "Mid".into(),
            column: 11,
            message: "start is 1-based; 0 is not a position".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "Mid (column 11): start is 1-based; 0 is not a position"
    );
}

// ---------------------------------------------------------------- functions

#[test]
fn append() {
    assert_eq!(
        ev(r#"Append([givenName], "@contoso.com")"#),
        t("John@contoso.com")
    );
    assert_eq!(ev(r#"Append([missing], "x")"#), Value::Null);
    assert_eq!(ev(r#"Append("a", [missing])"#), t("a"));
    assert_eq!(ev(r#"Append(Split("a,b", ","), "!")"#), list(&["a!", "b!"]));
}

#[test]
fn bit_and() {
    assert_eq!(ev("BitAnd(&HF, &HF7)"), Value::Integer(7));
    assert_eq!(ev("BitAnd([userAccountControl], 2)"), Value::Integer(2));
    assert_eq!(ev(r#"BitAnd("12", 4)"#), Value::Integer(4));
    assert_eq!(ev("BitAnd([missing], 2)"), Value::Null);
    assert!(ev_msg(r#"BitAnd("x", 1)"#).contains("whole number"));
    assert!(ev_msg("BitAnd(1.5, 1)").contains("whole number"));
}

#[test]
fn cbool() {
    assert_eq!(ev("CBool([givenName] = [givenName])"), Value::Boolean(true));
    assert_eq!(ev("CBool([givenName] = [surname])"), Value::Boolean(false));
    assert_eq!(ev("CBool(1)"), Value::Boolean(true));
    assert_eq!(ev(r#"CBool("0")"#), Value::Boolean(false));
    assert_eq!(ev(r#"CBool("TRUE")"#), Value::Boolean(true));
    assert_eq!(ev("CBool([missing])"), Value::Boolean(false));
    assert!(ev_msg(r#"CBool("maybe")"#).contains("neither True nor False"));
}

#[test]
fn cdate() {
    // Entra's example.
    assert_eq!(ev("CDate([StatusHireDate])"), t("3/1/2017 4:00:00 PM"));
    assert_eq!(
        ev(r#"CDate("2012-03-16-07:00")"#),
        t("3/16/2012 7:00:00 AM")
    );
    assert_eq!(ev(r#"CDate("2024-05-31")"#), t("5/31/2024 12:00:00 AM"));
    assert_eq!(
        ev(r#"CDate("2024-05-31T13:05:09.123Z")"#),
        t("5/31/2024 1:05:09 PM")
    );
    assert_eq!(
        ev(r#"CDate("2024-05-31T13:05:09")"#),
        t("5/31/2024 1:05:09 PM")
    );
    assert_eq!(
        ev(r#"CDate("12/25/2023 11:59:00 PM")"#),
        t("12/25/2023 11:59:00 PM")
    );
    assert_eq!(
        ev(r#"CDate("20150123105347.1Z")"#),
        t("1/23/2015 10:53:47 AM")
    );
    assert_eq!(
        ev(r#"CDate("Tue, 1 Jul 2003 10:52:37 +0200")"#),
        t("7/1/2003 8:52:37 AM")
    );
    assert_eq!(ev("CDate([missing])"), Value::Null);
    assert!(ev_msg(r#"CDate("soon")"#).contains("is not a date"));
    assert!(ev_msg(r#"CDate("2024-02-30")"#).contains("is not a date"));
}

#[test]
fn coalesce() {
    assert_eq!(ev(r#"Coalesce([missing], [givenName], "x")"#), t("John"));
    assert_eq!(
        ev(r#"Coalesce([missing], [alsoMissing], "default")"#),
        t("default")
    );
    // Lazy: a failing later argument is not evaluated.
    assert_eq!(ev(r#"Coalesce([givenName], Mid("a", 0, 1))"#), t("John"));
}

#[test]
fn convert_to_base64_and_utf8_hex() {
    assert_eq!(
        ev(r#"ConvertToBase64("Hello world!")"#),
        t("SABlAGwAbABvACAAdwBvAHIAbABkACEA")
    );
    assert_eq!(
        ev(r#"ConvertToUTF8Hex("Hello world!")"#),
        t("48656C6C6F20776F726C6421")
    );
    assert_eq!(ev(r#"ConvertToUTF8Hex("é")"#), t("C3A9"));
    assert_eq!(ev("ConvertToBase64([missing])"), Value::Null);
    assert_eq!(ev("ConvertToUTF8Hex([missing])"), Value::Null);
}

#[test]
fn count() {
    assert_eq!(ev("Count([proxyAddresses])"), Value::Integer(3));
    assert_eq!(ev("Count([missing])"), Value::Integer(0));
    assert_eq!(ev(r#"Count("x")"#), Value::Integer(1));
}

#[test]
fn cstr() {
    assert_eq!(ev("CStr(true)"), t("True"));
    assert_eq!(ev("CStr(5)"), t("5"));
    assert_eq!(ev("CStr(2.5)"), t("2.5"));
    assert_eq!(ev("CStr([userAccountControl])"), t("514"));
    assert_eq!(ev("CStr([missing])"), Value::Null);
    assert!(ev_msg("CStr([proxyAddresses])").contains("single value"));
}

#[test]
fn date_add() {
    // Entra's example.
    assert_eq!(
        ev(r#"DateAdd("d", 7, CDate("2012-03-16-07:00"))"#),
        t("3/23/2012 7:00:00 AM")
    );
    assert_eq!(
        ev(r#"DateAdd("m", 1, "2024-01-31")"#),
        t("2/29/2024 12:00:00 AM")
    );
    assert_eq!(
        ev(r#"DateAdd("yyyy", -1, "2024-02-29")"#),
        t("2/28/2023 12:00:00 AM")
    );
    assert_eq!(
        ev(r#"DateAdd("q", 1, "2024-01-15")"#),
        t("4/15/2024 12:00:00 AM")
    );
    assert_eq!(
        ev(r#"DateAdd("ww", 2, "2024-01-01")"#),
        t("1/15/2024 12:00:00 AM")
    );
    assert_eq!(
        ev(r#"DateAdd("h", -1, "2024-01-01")"#),
        t("12/31/2023 11:00:00 PM")
    );
    assert_eq!(
        ev(r#"DateAdd("n", 90, "2024-01-01")"#),
        t("1/1/2024 1:30:00 AM")
    );
    assert_eq!(
        ev(r#"DateAdd("S", 5, "2024-01-01")"#),
        t("1/1/2024 12:00:05 AM")
    );
    assert_eq!(ev(r#"DateAdd("d", 1, [missing])"#), Value::Null);
    assert!(ev_msg(r#"DateAdd("fortnight", 1, "2024-01-01")"#).contains("unknown interval"));
    assert!(
        ev_msg(r#"DateAdd("d", 9223372036854775807, "2024-01-01")"#).contains("range of dates")
    );
    assert!(
        ev_msg(r#"DateAdd("yyyy", 9223372036854775807, "2024-01-01")"#).contains("range of dates")
    );
    assert!(
        ev_msg(r#"DateAdd("m", -9223372036854775808, "2024-01-01")"#).contains("range of dates")
    );
}

#[test]
fn date_diff() {
    assert_eq!(
        ev(r#"DateDiff("d", "2024-01-01", "2024-03-01")"#),
        Value::Integer(60)
    );
    assert_eq!(
        ev(r#"DateDiff("d", Now(), CDate("2024-06-30T08:30:00Z"))"#),
        Value::Integer(30)
    );
    assert_eq!(
        ev(r#"DateDiff("yyyy", "2023-12-31", "2024-01-01")"#),
        Value::Integer(1)
    );
    assert_eq!(
        ev(r#"DateDiff("m", "2024-03-31", "2024-01-01")"#),
        Value::Integer(-2)
    );
    assert_eq!(
        ev(r#"DateDiff("q", "2024-03-31", "2024-04-01")"#),
        Value::Integer(1)
    );
    assert_eq!(
        ev(r#"DateDiff("h", "2024-01-01", "2024-01-02T06:00:00Z")"#),
        Value::Integer(30)
    );
    assert_eq!(
        ev(r#"DateDiff("w", "2024-01-01", "2024-01-15")"#),
        Value::Integer(2)
    );
    // 2024-01-06 is a Saturday; the next day starts a new calendar week.
    assert_eq!(
        ev(r#"DateDiff("ww", "2024-01-06", "2024-01-07")"#),
        Value::Integer(1)
    );
    assert_eq!(ev(r#"DateDiff("d", [missing], "2024-01-01")"#), Value::Null);
    assert!(ev_msg(r#"DateDiff("x", "2024-01-01", "2024-01-01")"#).contains("unknown interval"));
    assert!(ev_msg(r#"DateDiff([missing], "2024-01-01", "2024-01-01")"#).contains("required"));
}

#[test]
fn date_from_num_and_num_from_date() {
    assert_eq!(
        ev(r#"NumFromDate("2012-01-01T23:00:00Z")"#),
        Value::Integer(129699324000000000)
    );
    assert_eq!(
        ev("DateFromNum(129699324000000000)"),
        t("1/1/2012 11:00:00 PM")
    );
    assert_eq!(
        ev(r#"DateFromNum("129699324000000000")"#),
        t("1/1/2012 11:00:00 PM")
    );
    assert_eq!(
        ev(
            r#"NumFromDate(Join("", FormatDateTime("2024-05-31", , "yyyy-MM-dd", "yyyy-MM-dd"), "T23:59:59-08:00"))"#
        ),
        Value::Integer(133617023990000000)
    );
    assert_eq!(ev("NumFromDate([missing])"), Value::Null);
    assert_eq!(ev("DateFromNum([missing])"), Value::Null);
    assert_eq!(ev("DateFromNum(0)"), t("1/1/1601 12:00:00 AM"));
    // Extremes do not panic.
    let _ = parse("DateFromNum(9223372036854775807)")
        .unwrap()
        .eval(&ctx());
    let _ = parse("DateFromNum(-9223372036854775807)")
        .unwrap()
        .eval(&ctx());
}

#[test]
fn format_date_time() {
    // Entra's examples.
    assert_eq!(
        ev(r#"FormatDateTime("20150123105347.1Z","yyyyMMddHHmmss.fZ","yyyy-MM-dd")"#),
        t("2015-01-23")
    );
    assert_eq!(
        ev(r#"FormatDateTime([extensionAttribute1], , "yyyyMMddHHmmss.fZ", "yyyy-MM-dd")"#),
        t("2015-01-23")
    );
    assert_eq!(
        ev(
            r#"FormatDateTime("2024-05-31T10:07:03+02:00", "AdjustToUniversal", "yyyy-MM-ddTHH:mm:sszzz", "yyyy-MM-ddTHH:mm:ssK")"#
        ),
        t("2024-05-31T08:07:03Z")
    );
    assert_eq!(
        ev(
            r#"FormatDateTime("2024-05-31T10:07:03+02:00", , "yyyy-MM-ddTHH:mm:sszzz", "M/d/yyyy h:mm:ss tt zzz")"#
        ),
        t("5/31/2024 10:07:03 AM +02:00")
    );
    assert_eq!(
        ev(r#"FormatDateTime("5/31/2024 1:07:03 PM", "M/d/yyyy h:mm:ss tt", "yyyyMMddHHmmss.0Z")"#),
        t("20240531130703.0Z")
    );
    assert_eq!(
        ev(r#"FormatDateTime("31 May 2024", "d MMM yyyy", "dddd, MMMM d, yyyy")"#),
        t("Friday, May 31, 2024")
    );
    assert_eq!(
        ev(r#"FormatDateTime("2024-05-31 08:00", "yyyy-MM-dd HH:mm", "o")"#),
        t("2024-05-31T08:00:00.0000000")
    );
    assert_eq!(
        ev(
            r#"FormatDateTime("2024-05-31 08:00:00.25", "yyyy-MM-dd HH:mm:ss.FFF", "HH:mm:ss.FFF 'at' yy/M/d")"#
        ),
        t("08:00:00.25 at 24/5/31")
    );
    assert_eq!(
        ev(r#"FormatDateTime("2024-05-31 08:00:00", "yyyy-MM-dd HH:mm:ss", "HH:mm:ss.FFF")"#),
        t("08:00:00")
    );
    assert_eq!(
        ev(r#"FormatDateTime("2024-05-31 08:00:00", "yyyy-MM-dd HH:mm:ss", "s")"#),
        t("2024-05-31T08:00:00")
    );
    assert_eq!(
        ev(r#"FormatDateTime("2024-05-31 08:00:00+02:00", "yyyy-MM-dd HH:mm:ssK", "u")"#),
        t("2024-05-31 06:00:00Z")
    );
    assert_eq!(
        ev(r#"FormatDateTime([missing], "yyyy", "yy")"#),
        Value::Null
    );
    assert!(ev_msg(r#"FormatDateTime("2024-05", "yyyy-MM-dd", "yy")"#).contains("does not match"));
    assert!(
        ev_msg(r#"FormatDateTime("2024-05-31x", "yyyy-MM-dd", "yy")"#).contains("unexpected text")
    );
    assert!(ev_msg(r#"FormatDateTime("2024", "yyyy", "q")"#).contains("standard date format"));
    assert!(ev_msg(r#"FormatDateTime("2024", "yyyy", "'open")"#).contains("unclosed"));
    assert!(
        ev_msg(r#"FormatDateTime("2024", "Sideways", "yyyy", "yy")"#).contains("dateTimeStyles")
    );
    assert!(
        ev_msg(r#"FormatDateTime("2024", "yyyy", [missing])"#).contains("outputFormat is required")
    );
}

#[test]
fn guid_and_now() {
    assert_eq!(ev("Guid()"), t(GUID));
    assert_eq!(ev("Now()"), t("5/31/2024 8:30:00 AM"));
    let fresh = MapContext::new();
    assert!(uuid::Uuid::parse_str(&fresh.new_guid()).is_ok());
}

#[test]
fn ignore_flow_if_null_or_empty() {
    assert_eq!(
        ev_err("IgnoreFlowIfNullOrEmpty([missing])"),
        EvalError::IgnoreFlow
    );
    assert_eq!(
        ev_err("IgnoreFlowIfNullOrEmpty([empty])"),
        EvalError::IgnoreFlow
    );
    assert_eq!(ev("IgnoreFlowIfNullOrEmpty([givenName])"), t("John"));
    // It flows out of enclosing calls.
    assert_eq!(
        ev_err(r#"Join(" ", "a", IgnoreFlowIfNullOrEmpty([missing]))"#),
        EvalError::IgnoreFlow
    );
}

#[test]
fn iif() {
    assert_eq!(
        ev(r#"IIF([country]="USA",[country],[department])"#),
        t("USA")
    );
    assert_eq!(
        ev(r#"IIF([country]="FR",[country],[department])"#),
        t("Sales")
    );
    assert_eq!(ev(r#"IIF(IsPresent([missing]), "yes", "no")"#), t("no"));
    assert_eq!(ev(r#"IIF("true", 1, 2)"#), Value::Integer(1));
    // Lazy: the branch not taken cannot fail.
    assert_eq!(ev(r#"IIF(false, CDate("never"), "ok")"#), t("ok"));
    assert!(ev_msg(r#"IIF("perhaps", 1, 2)"#).starts_with("IIF (column 1)"));
}

#[test]
fn instr() {
    assert_eq!(
        ev(r#"InStr("The quick brown fox","quick")"#),
        Value::Integer(5)
    );
    assert_eq!(
        ev(r#"InStr("repEated","e",3,vbBinaryCompare)"#),
        Value::Integer(7)
    );
    assert_eq!(
        ev(r#"InStr("repEated","e",3,vbTextCompare)"#),
        Value::Integer(4)
    );
    assert_eq!(ev(r#"InStr("repEated","e",3,1)"#), Value::Integer(4));
    assert_eq!(ev(r#"InStr("abc","z")"#), Value::Integer(0));
    assert_eq!(ev(r#"InStr("abc","a",99)"#), Value::Integer(0));
    assert_eq!(ev(r#"InStr("abc","",2)"#), Value::Integer(2));
    assert_eq!(ev(r#"InStr("żółw","ł")"#), Value::Integer(3));
    assert_eq!(ev(r#"InStr([missing],"a")"#), Value::Null);
    assert!(ev_msg(r#"InStr("a","a",0)"#).contains("1-based"));
    assert!(ev_msg(r#"InStr("a","a",1,"fuzzy")"#).contains("compareType"));
}

#[test]
fn is_functions() {
    assert_eq!(ev("IsNull([missing])"), Value::Boolean(true));
    assert_eq!(ev("IsNull([empty])"), Value::Boolean(false));
    assert_eq!(ev("IsNullOrEmpty([empty])"), Value::Boolean(true));
    assert_eq!(ev("IsNullOrEmpty([missing])"), Value::Boolean(true));
    assert_eq!(ev("IsNullOrEmpty([givenName])"), Value::Boolean(false));
    assert_eq!(ev("IsPresent([givenName])"), Value::Boolean(true));
    assert_eq!(ev("IsPresent([empty])"), Value::Boolean(false));
    assert_eq!(ev(r#"IsString("a")"#), Value::Boolean(true));
    assert_eq!(ev("IsString(5)"), Value::Boolean(false));
    assert_eq!(ev("IsString([missing])"), Value::Boolean(false));
}

#[test]
fn item() {
    assert_eq!(ev("Item([proxyAddresses], 1)"), t("SMTP:j@x.com"));
    assert_eq!(ev("Item([proxyAddresses], 3)"), t("smtp:d@x.com"));
    assert_eq!(ev("Item([proxyAddresses], 4)"), Value::Null);
    assert_eq!(ev("Item([givenName], 1)"), t("John"));
    assert_eq!(ev("Item([missing], 1)"), Value::Null);
    assert!(ev_msg("Item([proxyAddresses], 0)").contains("1-based"));
}

#[test]
fn join() {
    assert_eq!(ev(r#"Join(",", "a", "b")"#), t("a,b"));
    assert_eq!(
        ev(r#"Join(" ", [givenName], [missing], [surname])"#),
        t("John Doe")
    );
    assert_eq!(
        ev(r#"Join(";", [proxyAddresses])"#),
        t("SMTP:j@x.com;smtp:jd@x.com;smtp:d@x.com")
    );
    assert_eq!(ev(r#"Join("", 1, true)"#), t("1True"));
    assert_eq!(ev(r#"Join(",", [missing], [alsoMissing])"#), Value::Null);
    assert_eq!(ev(r#"Join(",", [empty])"#), t(""));
}

#[test]
fn left() {
    assert_eq!(ev(r#"Left("John Doe", 3)"#), t("Joh"));
    assert_eq!(ev(r#"Left("ab", 5)"#), t("ab"));
    assert_eq!(ev(r#"Left("ab", 0)"#), t(""));
    assert_eq!(ev(r#"Left("ab", -1)"#), t("ab"));
    assert_eq!(ev(r#"Left("żółw", 2)"#), t("żó"));
    assert_eq!(ev("Left([missing], 1)"), Value::Null);
}

#[test]
fn mid() {
    assert_eq!(ev(r#"Mid("John Doe", 3, 5)"#), t("hn Do"));
    assert_eq!(ev(r#"Mid("abc", 3, 10)"#), t("c"));
    assert_eq!(ev(r#"Mid("abc", 9, 1)"#), t(""));
    assert_eq!(
        ev(r#"Mid("abc", 9223372036854775807, 9223372036854775807)"#),
        t("")
    );
    assert_eq!(ev("Mid([missing], 1, 1)"), Value::Null);
    assert!(ev_msg(r#"Mid("abc", 1, -1)"#).contains("negative"));
}

#[test]
fn normalize_diacritics() {
    assert_eq!(ev(r#"NormalizeDiacritics("Zoë")"#), t("Zoe"));
    assert_eq!(
        ev(r#"NormalizeDiacritics("Ørjan Łukasz Ñúñez Đorđe Ångström")"#),
        t("Orjan Lukasz Nunez Dorde Angstrom")
    );
    assert_eq!(ev("NormalizeDiacritics([missing])"), Value::Null);
}

#[test]
fn not() {
    assert_eq!(ev("Not(true)"), Value::Boolean(false));
    assert_eq!(ev(r#"Not("False")"#), Value::Boolean(true));
    assert_eq!(ev("Not([missing])"), Value::Boolean(true));
    assert_eq!(ev("Not([IsSoftDeleted])"), Value::Boolean(true));
    assert_eq!(ev(r#"Not("abc")"#), Value::Boolean(true));
}

#[test]
fn pcase() {
    assert_eq!(ev(r#"PCase("NEW york")"#), t("New York"));
    assert_eq!(ev(r#"PCase("joHN o'neil-smith")"#), t("John O'neil-Smith"));
    assert_eq!(
        ev(r#"PCase("anne-marie DUPONT", " ")"#),
        t("Anne-marie Dupont")
    );
    assert_eq!(ev(r#"PCase("a,b;c", ",")"#), t("A,B;c"));
    assert_eq!(ev("PCase([missing])"), Value::Null);
}

#[test]
fn random_string() {
    for _ in 0..50 {
        let Value::Text(s) = ev("RandomString(6, 3, 0, 0, 3)") else {
            panic!("not text")
        };
        assert_eq!(s.chars().count(), 6);
        assert!(s.chars().filter(|c| c.is_ascii_digit()).count() >= 3, "{s}");
        assert!(
            s.chars().filter(|c| c.is_ascii_lowercase()).count() >= 3,
            "{s}"
        );

        let Value::Text(s) = ev(r#"RandomString(10, 2, 2, 2, 1, "?,")"#) else {
            panic!("not text")
        };
        assert_eq!(s.chars().count(), 10);
        assert!(!s.contains('?') && !s.contains(','), "{s}");
        assert!(
            s.chars().filter(|c| SPECIAL.contains(*c)).count() >= 2,
            "{s}"
        );
        assert!(
            s.chars().filter(|c| c.is_ascii_uppercase()).count() >= 2,
            "{s}"
        );
    }
    let Value::Text(s) = ev("RandomString(12)") else {
        panic!("not text")
    };
    assert_eq!(s.len(), 12);
    assert!(ev_msg("RandomString(3, 2, 2)").contains("add up to 4"));
    assert!(ev_msg("RandomString(0)").contains("between 1 and 256"));
    assert!(ev_msg("RandomString(257)").contains("between 1 and 256"));
    assert!(ev_msg("RandomString(5, -1)").contains("negative"));
    assert!(ev_msg(r#"RandomString(5, 1, 0, 0, 0, "0123456789")"#).contains("excludes"));
    let everything = format!(
        "RandomString(5, 0, 0, 0, 0, \"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ{SPECIAL}\")"
    );
    assert!(ev_msg(&everything).contains("excludes every character"));
}

const SPECIAL: &str = "!#$%&()*+,-./:;<=>?@[]^_{|}~";

#[test]
fn redact() {
    let c = ctx().with("password", t("s3cret"));
    assert_eq!(ev_in(&c, "Redact([password])"), t("s3cret"));
    assert_eq!(ev("Redact([missing])"), Value::Null);
}

#[test]
fn remove_duplicates() {
    assert_eq!(ev("RemoveDuplicates([dupes])"), list(&["a", "b", "c"]));
    assert_eq!(ev("RemoveDuplicates([givenName])"), t("John"));
    assert_eq!(ev("RemoveDuplicates([missing])"), Value::Null);
}

#[test]
fn replace_literal_and_template() {
    assert_eq!(ev(r#"Replace("a.b.c", ".", , , "-", , )"#), t("a-b-c"));
    assert_eq!(ev(r#"Replace("a.b.c", ".", , , , , )"#), t("abc"));
    assert_eq!(
        ev(r#"Replace([givenName], "{0}", , , , , "Hello {0}!")"#),
        t("Hello John!")
    );
    assert_eq!(ev(r#"Replace([missing], ".", , , "-", , )"#), Value::Null);
    assert!(ev_msg(r#"Replace("a", "", , , "-", , )"#).contains("oldValue is empty"));
    assert!(ev_msg(r#"Replace("a", , , , "-", , )"#).contains("oldValue or regexPattern"));
}

#[test]
fn replace_regex() {
    // Entra's example: strip letters and underscores.
    assert_eq!(
        ev(r#"Replace([mailNickname], , "[a-zA-Z_]*", , "", , )"#),
        t("72")
    );
    assert_eq!(
        ev(r#"Replace("john@contoso.com", , "(?<Suffix>@(.)*)", "Suffix", "@fabrikam.com", , )"#),
        t("john@fabrikam.com")
    );
    assert_eq!(
        ev(r#"Replace("x@contoso.com", , "@(?<domain>.*)", "domain", , [domain], )"#),
        t("x@fabrikam.com")
    );
    assert_eq!(
        ev(r#"Replace("Doe, John", , "(\w+), (\w+)", , "$2 $1", , )"#),
        t("John Doe")
    );
    assert_eq!(
        ev(
            r#"Replace("+1 425-555-0100", , "\\+(?<isdCode>\\d* )(?<phoneNumber>.*)", , "${phoneNumber}", , )"#
        ),
        t("425-555-0100")
    );
    assert_eq!(
        ev(r#"Replace("a/b:c", , "[\\\\/:;@\"\\[\\]|<>+=,?*]", , "_", , )"#),
        t("a_b_c")
    );
    // Pattern from data: compiled at evaluation, errors reported then.
    let c = ctx().with("pattern", t("(bad"));
    let e = parse(r#"Replace("abc", , [pattern], , "", , )"#).unwrap();
    assert!(
        e.eval(&c)
            .unwrap_err()
            .to_string()
            .contains("invalid regular expression")
    );
    let c = ctx().with("pattern", t("b+"));
    assert_eq!(
        ev_in(&c, r#"Replace("abbbc", , [pattern], , "-", , )"#),
        t("a-c")
    );
    assert!(ev_msg(r#"Replace("abc", , "(?<x>b)", "y", "-", , )"#).contains("no group named 'y'"));
    assert_eq!(
        ev(r#"Replace(Split("a1,b2", ","), , "\d", , "_", , )"#),
        list(&["a_", "b_"])
    );
}

#[test]
fn select_unique_value() {
    assert_eq!(
        ev(r#"SelectUniqueValue([missing], [empty], Join(".", [givenName], [surname]), "x")"#),
        t("John.Doe")
    );
    assert_eq!(ev("SelectUniqueValue([missing])"), Value::Null);
}

#[test]
fn single_app_role_assignment() {
    assert_eq!(
        ev("SingleAppRoleAssignment([appRoleAssignments])"),
        t("User")
    );
    let c = ctx().with("appRoleAssignments", list(&["User", "User"]));
    assert_eq!(
        ev_in(&c, "SingleAppRoleAssignment([appRoleAssignments])"),
        t("User")
    );
    assert_eq!(ev("SingleAppRoleAssignment([missing])"), Value::Null);
    let m = ev_msg("SingleAppRoleAssignment([twoRoles])");
    assert!(
        m.contains("2 different app roles are assigned (User, Admin)"),
        "{m}"
    );
}

#[test]
fn split() {
    assert_eq!(ev(r#"Split("a,b,c", ",")"#), list(&["a", "b", "c"]));
    assert_eq!(ev(r#"Split("a", "")"#), list(&["a"]));
    assert_eq!(ev(r#"Split([missing], ",")"#), Value::Null);
    assert!(ev_msg(r#"Split("a", [missing])"#).contains("delimiter is required"));
}

#[test]
fn strip_spaces() {
    assert_eq!(ev("StripSpaces(\" a b\tc \")"), t("abc"));
    assert_eq!(ev("StripSpaces([missing])"), Value::Null);
}

#[test]
fn switch() {
    let src = r#"Switch([state], "Australia/Sydney", "NSW", "Australia/Sydney", "QLD", "Australia/Brisbane", "SA", "Australia/Adelaide")"#;
    let c = ctx().with("state", t("QLD"));
    assert_eq!(ev_in(&c, src), t("Australia/Brisbane"));
    let c = ctx().with("state", t("WA"));
    assert_eq!(ev_in(&c, src), t("Australia/Sydney"));
    // Keys compare case-sensitively.
    let c = ctx().with("state", t("qld"));
    assert_eq!(ev_in(&c, src), t("Australia/Sydney"));
    // Booleans read as True/False, so Entra's soft-delete mapping works.
    let soft = r#"Switch([IsSoftDeleted], , "False", "True", "True", "False")"#;
    assert_eq!(ev(soft), t("True"));
    let c = ctx().with("IsSoftDeleted", Value::Boolean(true));
    assert_eq!(ev_in(&c, soft), t("False"));
    // An empty key matches a null source.
    assert_eq!(
        ev(r#"Switch([missing], "d", , "was null", "x", "y")"#),
        t("was null")
    );
    // Lazy: values of other keys are not evaluated.
    assert_eq!(
        ev(r#"Switch("a", "d", "a", "A", "b", CDate("never"))"#),
        t("A")
    );
}

#[test]
fn switch_on_an_unchanged_source_is_never_null() {
    // Entra's known bug cleared the target when the Switch source had not
    // changed. Here the source is always read from the full object: the same
    // object evaluates to the same value every time, and a default of the
    // source itself keeps the source value.
    let src = r#"Switch([state], [state], "NY", "New York")"#;
    let c = ctx().with("state", t("CA"));
    let e = parse(src).unwrap();
    for _ in 0..3 {
        assert_eq!(e.eval(&c).unwrap(), t("CA"));
    }
    let c = ctx().with("state", t("NY"));
    assert_eq!(e.eval(&c).unwrap(), t("New York"));
}

#[test]
fn to_lower_and_to_upper() {
    assert_eq!(ev(r#"ToLower("ÀBC")"#), t("àbc"));
    assert_eq!(ev(r#"ToUpper("abc", "en-US")"#), t("ABC"));
    assert_eq!(ev("ToLower([missing])"), Value::Null);
    assert_eq!(
        ev("ToLower([proxyAddresses])"),
        list(&["smtp:j@x.com", "smtp:jd@x.com", "smtp:d@x.com"])
    );
}

#[test]
fn word() {
    assert_eq!(ev(r#"Word("The quick brown fox",3," ")"#), t("brown"));
    assert_eq!(
        ev(r#"Word("This,string!has&many separators", 3, ",!&#")"#),
        t("has")
    );
    assert_eq!(ev(r#"Word("a  b", 2, " ")"#), t("b"));
    assert_eq!(ev(r#"Word("a b", 5, " ")"#), Value::Null);
    assert_eq!(ev(r#"Word("a b", 0, " ")"#), Value::Null);
    assert_eq!(ev(r#"Word([missing], 1, " ")"#), Value::Null);
}

#[test]
fn every_function_is_listed_once_and_documented() {
    for (i, s) in FUNCTIONS.iter().enumerate() {
        assert!(!s.summary.is_empty(), "{}", s.name);
        assert!(
            FUNCTIONS[..i]
                .iter()
                .all(|o| !o.name.eq_ignore_ascii_case(s.name)),
            "{} twice",
            s.name
        );
        assert!(functions::lookup(s.name).is_some());
    }
    assert!(
        FUNCTIONS
            .windows(2)
            .all(|w| w[0].name.to_lowercase() < w[1].name.to_lowercase())
    );
}

#[test]
fn map_context_is_case_insensitive() {
    let mut c = MapContext::new();
    c.insert("Mail", t("a@b"));
    assert_eq!(c.attribute("mail"), Some(t("a@b")));
    c.insert("MAIL", t("c@d"));
    assert_eq!(c.attribute("Mail"), Some(t("c@d")));
    let c = MapContext::from_attributes(&[Attribute {
        name: "x".into(),
        value: Value::Integer(1),
    }]);
    assert_eq!(c.attribute("X"), Some(Value::Integer(1)));
}

// ---------------------------------------------------------------- garbage

/// A small deterministic generator, so failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn check_no_panic(src: &str, c: &MapContext) {
    match parse(src) {
        Ok(e) => {
            let _ = e.eval(c);
            let _ = e.attributes();
            let _ = e.is_redacted();
        }
        Err(e) => {
            let _ = e.render(src);
            assert!(e.column >= 1, "{src}");
        }
    }
}

#[test]
fn garbage_input_returns_errors_without_panicking() {
    let fixed = [
        "(",
        ")",
        ",",
        "\"",
        "\\",
        "[",
        "]",
        "[[",
        "]]",
        "[\"]",
        "\"\\",
        "\"\\\"",
        "Join(",
        "Join(,",
        "Join(,,)",
        "Mid(,,)",
        "Left(,)",
        "=",
        "<>",
        "[a]=",
        "=[a]",
        "1 = ",
        "-",
        "--1",
        "1.",
        ".5",
        "&",
        "&H",
        "&HFFFFFFFFFFFFFFFFFFFF",
        "Now())",
        "Guid(()",
        "\u{0}",
        "\u{feff}Now()",
        "𝔘(1)",
        "ToLower(\"\u{0}\")",
        "Word(\"a\", -9223372036854775808, \" \")",
        "Left(\"a\", -9223372036854775808)",
        "Mid(\"a\", -9223372036854775808, 1)",
        "InStr(\"a\", \"a\", 9223372036854775807)",
        "Item([proxyAddresses], 9223372036854775807)",
        "DateAdd(\"d\", 1.5, \"2024-01-01\")",
        "FormatDateTime(\"9999-12-31\", \"yyyy-MM-dd\", \"yyyyyyyyyyyyyyyyyyyyyyyy\")",
        "FormatDateTime(\"1\", \"%\", \"%\")",
        "FormatDateTime(\"1\", \"\\\\\", \"\\\\\")",
        "FormatDateTime(\"99999999999999999999\", \"yyyyyyyyyyyyyyyyyyyy\", \"o\")",
        "FormatDateTime(\"2024-01-01\", \"yyyy-MM-dd\", \"ffffffff\")",
        "NumFromDate(\"+262142-12-31T23:59:59Z\")",
        "DateAdd(\"yyyy\", 262000, \"2024-01-01\")",
        "Replace(\"a\", , \"(?=a)\", , \"\", , )",
        "Replace(\"a\", , \"a{99999999}\", , \"\", , )",
        "Replace(\"a\", , \"\", , \"x\", , )",
    ];
    let c = ctx();
    for src in fixed {
        check_no_panic(src, &c);
    }

    let alphabet: Vec<&str> = vec![
        "(",
        ")",
        ",",
        "\"",
        "\\",
        "[",
        "]",
        " ",
        "=",
        "<>",
        "-",
        "1",
        "0",
        ".",
        "&H",
        "a",
        "x",
        "é",
        "\n",
        "Join",
        "Mid",
        "Switch",
        "Replace",
        "FormatDateTime",
        "IIF",
        "Word",
        "Left",
        "[givenName]",
        "[proxyAddresses]",
        "[missing]",
        "\"yyyy\"",
        "\"\"",
        "true",
        "Now()",
        "Split",
        "InStr",
        "DateAdd",
        "\"d\"",
        "Coalesce",
        "IgnoreFlowIfNullOrEmpty",
    ];
    let mut rng = Lcg(42);
    for _ in 0..4000 {
        let n = rng.below(24);
        let src: String = (0..n)
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        check_no_panic(&src, &c);
    }

    // Mutations of valid expressions: deletions, duplications, swaps.
    let valid = [
        r#"Switch([IsSoftDeleted], , "False", "True", "True", "False")"#,
        r#"FormatDateTime([extensionAttribute1], , "yyyyMMddHHmmss.fZ", "yyyy-MM-dd")"#,
        r#"Replace("john@contoso.com", , "(?<Suffix>@(.)*)", "Suffix", "@fabrikam.com", , )"#,
        r#"IIF([country]="USA",Join(" ", [givenName], [surname]),Mid("John Doe", 3, 5))"#,
        r#"DateAdd("d", 7, CDate("2012-03-16-07:00"))"#,
    ];
    for v in valid {
        let chars: Vec<char> = v.chars().collect();
        for _ in 0..600 {
            let mut m = chars.clone();
            for _ in 0..1 + rng.below(3) {
                if m.is_empty() {
                    break;
                }
                let i = rng.below(m.len());
                match rng.below(3) {
                    0 => {
                        m.remove(i);
                    }
                    1 => {
                        let c = m[rng.below(m.len())];
                        m.insert(i, c);
                    }
                    _ => {
                        let j = rng.below(m.len());
                        m.swap(i, j);
                    }
                }
            }
            let src: String = m.into_iter().collect();
            check_no_panic(&src, &c);
        }
    }
}
