//! Tests of the evaluation bounds: one per limit and per function that can
//! grow its input, the attacker's second moves (many small growths, growth
//! through lists, computed patterns), and the static worst-case check.

use super::bounds::{self, LARGEST_BUILT};
use super::*;

const KIB: usize = 1024;

fn t(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn ctx_with(attrs: &[(&str, Value)]) -> MapContext {
    let mut c = MapContext::new().with_guid("0f8fad5b-d9cb-469f-a165-70867728950e");
    for (n, v) in attrs {
        c.insert(n, v.clone());
    }
    c
}

fn p(src: &str) -> Expr {
    parse(src).unwrap_or_else(|e| panic!("{src}: {}", e.render(src)))
}

/// Evaluate under `limits`, expecting a limit error; returns it with the
/// function named, after checking the largest text built on the way never
/// exceeded the per-value limit (a refused result is not built first).
fn limit_err(src: &str, c: &MapContext, limits: Limits) -> (String, LimitError) {
    limit_err_built(src, c, limits, limits.max_value_bytes)
}

/// [`limit_err`] allowing `max_built` bytes to be built (functions that
/// grow by a small constant factor are checked after).
fn limit_err_built(
    src: &str,
    c: &MapContext,
    limits: Limits,
    max_built: usize,
) -> (String, LimitError) {
    LARGEST_BUILT.with(|b| b.set(0));
    let r = p(src).eval_with(c, limits);
    let built = LARGEST_BUILT.with(|b| b.get());
    assert!(
        built <= max_built,
        "{src}: built {built} bytes before refusing (allowed {max_built})"
    );
    match r {
        Err(EvalError::Limit {
            function, error, ..
        }) => (function, error),
        Ok(v) => panic!(
            "{src}: expected a limit error, got a value of {} bytes",
            bounds::value_bytes(&v)
        ),
        Err(other) => panic!("{src}: expected a limit error, got {other}"),
    }
}

fn value_err(src: &str, c: &MapContext) -> (String, usize) {
    value_err_built(src, c, 64 * KIB)
}

fn value_err_built(src: &str, c: &MapContext, max_built: usize) -> (String, usize) {
    match limit_err_built(src, c, Limits::DEFAULT, max_built) {
        (f, LimitError::ValueBytes { reached, limit }) => {
            assert_eq!(limit, 64 * KIB);
            (f, reached)
        }
        other => panic!("{src}: expected a value-size error, got {other:?}"),
    }
}

/// `Replace` nested `n` deep, each level replacing "a" by ten of them.
fn nested_replace(n: usize) -> String {
    let mut e = "[x]".to_string();
    for _ in 0..n {
        e = format!(r#"Replace({e}, "a", , , "aaaaaaaaaa", , )"#);
    }
    e
}

// ------------------------------------------------------------ per value

#[test]
fn replace_text_growth_is_refused_before_it_is_built() {
    let c = ctx_with(&[("x", t(&"a".repeat(10 * KIB)))]);
    // 10 KiB of "a", each replaced by ten: 100 KiB.
    let (f, reached) = value_err(r#"Replace([x], "a", , , "aaaaaaaaaa", , )"#, &c);
    assert_eq!(f, "Replace");
    assert_eq!(reached, 100 * KIB);
    // Just under the limit still works.
    let c = ctx_with(&[("x", t(&"a".repeat(6 * KIB)))]);
    let v = p(r#"Replace([x], "a", , , "aaaaaaaaaa", , )"#)
        .eval(&c)
        .unwrap();
    assert_eq!(v, t(&"a".repeat(60 * KIB)));
}

#[test]
fn replace_template_growth_is_refused() {
    // Every "X" of the template becomes the 1 KiB source: 100 of them.
    let template = "X".repeat(100);
    let c = ctx_with(&[("x", t(&"s".repeat(KIB)))]);
    let (f, reached) = value_err(&format!(r#"Replace([x], "X", , , , , "{template}")"#), &c);
    assert_eq!(f, "Replace");
    assert_eq!(reached, 100 * KIB);
}

#[test]
fn replace_regex_group_references_are_sized_first() {
    // Every match is written back ten times through `$0`.
    let c = ctx_with(&[("x", t(&"ab".repeat(5 * KIB)))]);
    let (f, reached) = value_err(r#"Replace([x], , "ab", , "$0$0$0$0$0$0$0$0$0$0", , )"#, &c);
    assert_eq!(f, "Replace");
    assert_eq!(reached, 100 * KIB);
    // A pattern matching the empty string matches between every character.
    let c = ctx_with(&[("x", t(&"b".repeat(30 * KIB)))]);
    let (_, reached) = value_err(r#"Replace([x], , "", , "zz", , )"#, &c);
    assert_eq!(reached, 30 * KIB + 2 * (30 * KIB + 1));
}

#[test]
fn replace_regex_named_group_growth_is_refused() {
    let c = ctx_with(&[("x", t(&"a".repeat(10 * KIB)))]);
    let (_, reached) = value_err(r#"Replace([x], , "(?<g>a)", "g", "aaaaaaaaaa", , )"#, &c);
    assert_eq!(reached, 100 * KIB);
}

#[test]
fn append_over_a_list_counts_every_element() {
    // Many small growths: each element stays small, the list does not.
    let list: Vec<String> = (0..2000).map(|i| format!("item{i:05}")).collect();
    let c = ctx_with(&[("l", Value::TextList(list))]);
    let (f, reached) = value_err(&format!(r#"Append([l], "{}")"#, "s".repeat(20)), &c);
    assert_eq!(f, "Append");
    assert!(reached > 64 * KIB && reached < 70 * KIB, "{reached}");
    // A single Append over the limit too.
    let c = ctx_with(&[("x", t(&"a".repeat(60 * KIB)))]);
    let (_, reached) = value_err(&format!(r#"Append([x], "{}")"#, "b".repeat(5 * KIB)), &c);
    assert_eq!(reached, 65 * KIB);
}

#[test]
fn functions_over_a_list_are_checked_for_the_whole_list() {
    // Each element is small; the list is not (3000 x (30 + 24) bytes).
    let list: Vec<String> = (0..3000).map(|_| "A".repeat(30)).collect();
    let c = ctx_with(&[("l", Value::TextList(list))]);
    let (f, reached) = value_err_built("ToLower([l])", &c, 64 * KIB);
    assert_eq!(f, "ToLower");
    assert!(reached > 64 * KIB && reached <= 64 * KIB + 54, "{reached}");
}

#[test]
fn join_sizes_separators_before_joining() {
    // A long separator repeated between many parts.
    let list: Vec<String> = (0..200).map(|i| i.to_string()).collect();
    let sep = "-".repeat(500);
    let c = ctx_with(&[("l", Value::TextList(list))]);
    let (f, reached) = value_err(&format!(r#"Join("{sep}", [l])"#), &c);
    assert_eq!(f, "Join");
    assert!(reached > 199 * 500, "{reached}");
}

#[test]
fn split_is_sized_and_counted() {
    // 30 000 parts: too many steps under the default budget...
    let c = ctx_with(&[("x", t(&",".repeat(30_000)))]);
    let (f, e) = limit_err(r#"Split([x], ",")"#, &c, Limits::DEFAULT);
    assert_eq!(f, "Split");
    assert!(matches!(e, LimitError::Steps { .. }), "{e}");
    // ...and too large when steps are not the limit: 30 001 list elements
    // cost 24 bytes each.
    let limits = Limits {
        max_steps: usize::MAX,
        ..Limits::DEFAULT
    };
    let (_, e) = limit_err(r#"Split([x], ",")"#, &c, limits);
    assert_eq!(
        e,
        LimitError::ValueBytes {
            reached: 30_001 * ITEM_BYTES,
            limit: 64 * KIB
        }
    );
}

#[test]
fn encodings_and_case_mapping_are_checked_after() {
    let c = ctx_with(&[("x", t(&"a".repeat(40 * KIB)))]);
    let (f, reached) = value_err("ConvertToUTF8Hex([x])", &c);
    assert_eq!((f.as_str(), reached), ("ConvertToUTF8Hex", 80 * KIB));
    let (f, _) = value_err("ConvertToBase64([x])", &c);
    assert_eq!(f, "ConvertToBase64");
    // "ΐ" (2 bytes) upper-cases to three characters (6 bytes).
    // These grow by a small constant factor and are checked after they
    // are built (at most three times their input).
    let c = ctx_with(&[("x", t(&"ΐ".repeat(12 * KIB)))]);
    let (f, reached) = value_err_built("ToUpper([x])", &c, 3 * 24 * KIB);
    assert_eq!((f.as_str(), reached), ("ToUpper", 72 * KIB));
}

// ------------------------------------------------------------ total

#[test]
fn many_small_values_exhaust_the_total_budget() {
    // Each value is under 64 KiB; together they pass 1 MiB.
    let c = ctx_with(&[("x", t(&"a".repeat(60 * KIB)))]);
    let args: Vec<String> = (0..20).map(|i| format!(r#"Append([x], "{i}")"#)).collect();
    let src = format!(r#"Coalesce(IsNull(Join("", {})), "")"#, args.join(", "));
    let (_, e) = limit_err(&src, &c, Limits::DEFAULT);
    match e {
        LimitError::TotalBytes { reached, limit } => {
            assert_eq!(limit, 1024 * KIB);
            assert!(reached > limit, "{reached}");
        }
        other => panic!("expected the total budget, got {other}"),
    }
}

#[test]
fn source_attributes_read_count_toward_the_total() {
    let c = ctx_with(&[("x", t(&"a".repeat(300 * KIB)))]);
    let src = r#"IsNull(Coalesce([x], [x], [x], [x]))"#;
    // Coalesce stops at the first; make every read happen.
    let src2 = r#"Switch("k", "d", [x], "1", [x], "2", [x], "3", [x], "4")"#;
    assert_eq!(p(src).eval(&c).unwrap(), Value::Boolean(false));
    let (f, e) = limit_err(src2, &c, Limits::DEFAULT);
    assert_eq!(f, "[x]");
    assert!(matches!(e, LimitError::TotalBytes { .. }), "{e}");
}

// ------------------------------------------------------------ steps

#[test]
fn steps_count_nodes() {
    let args = ["1"; 60].join(", ");
    let src = format!("Count(Join(\",\", {args}))");
    let limits = Limits {
        max_steps: 50,
        ..Limits::DEFAULT
    };
    let (_, e) = limit_err(&src, &ctx_with(&[]), limits);
    assert_eq!(
        e,
        LimitError::Steps {
            reached: 51,
            limit: 50
        }
    );
    assert!(p(&src).eval(&ctx_with(&[])).is_ok());
}

#[test]
fn steps_count_list_elements() {
    let list: Vec<String> = (0..20_000).map(|_| "A".to_string()).collect();
    let c = ctx_with(&[("l", Value::TextList(list))]);
    for f in ["ToLower([l])", "RemoveDuplicates([l])", r#"Join(",", [l])"#] {
        let (_, e) = limit_err(f, &c, Limits::DEFAULT);
        assert!(matches!(e, LimitError::Steps { .. }), "{f}: {e}");
    }
}

#[test]
fn computed_regular_expressions_cost_steps() {
    let c = ctx_with(&[("x", t("abc")), ("pat", t("b"))]);
    let one = r#"Replace([x], , [pat], , "z", , )"#;
    assert_eq!(p(one).eval(&c).unwrap(), t("azc"));
    let many = format!("Join(\",\", {})", [one; 11].join(", "));
    let (f, e) = limit_err(&many, &c, Limits::DEFAULT);
    assert_eq!(f, "Replace");
    assert!(matches!(e, LimitError::Steps { .. }), "{e}");
}

// ------------------------------------------------------------ regex size

#[test]
fn regex_compiled_size_is_capped() {
    // Short to write, huge to compile.
    let e = parse(r#"Replace([x], , "(\w{100}){100}", , "z", , )"#).unwrap_err();
    assert!(e.message.contains("compiles to more than"), "{e}");
    assert!(e.message.contains(&REGEX_SIZE_LIMIT.to_string()), "{e}");
    // The same pattern computed at run time is refused at run time.
    let c = ctx_with(&[("x", t("abc")), ("pat", t(r"(\w{100}){100}"))]);
    let err = p(r#"Replace([x], , [pat], , "z", , )"#)
        .eval(&c)
        .unwrap_err();
    assert!(err.to_string().contains("compiles to more than"), "{err}");
    // A pattern under the cap is fine.
    assert!(parse(r#"Replace([x], , "([a-z0-9]{10}){10}", , "z", , )"#).is_ok());
}

#[test]
fn literal_regexes_per_expression_are_capped() {
    let one = |e: String| format!(r#"Replace({e}, , "a", , "b", , )"#);
    let mut e = "[x]".to_string();
    for _ in 0..MAX_REGEXES {
        e = one(e);
    }
    assert!(parse(&e).is_ok());
    let err = parse(&one(e)).unwrap_err();
    assert!(err.message.contains("max_regexes"), "{err}");
}

// ------------------------------------------------------------ replacement parsing

#[test]
fn replacement_expansion_matches_the_regex_crate() {
    let re = regex::Regex::new(r"(?<first>\w)(\w)?(?<last>\d)?").unwrap();
    let hay = "ab1 c d9 ef";
    for rep in [
        "",
        "x",
        "$0",
        "$1-$2",
        "$first$last",
        "${first}x",
        "$firstx",
        "$$",
        "$",
        "a$",
        "$ $",
        "${",
        "${first",
        "${}",
        "$9",
        "$99999999999999999999",
        "$-",
        "$_",
        "${last}${2}$$1",
        "é$1ü",
        "$1$",
    ] {
        let expected = re.replace_all(hay, rep).into_owned();
        let pieces = super::functions::tests_support::expand_all(&re, hay, rep);
        assert_eq!(pieces, expected, "replacement {rep:?}");
    }
}

// ------------------------------------------------------------ nested Replace

#[test]
fn nested_replace_attack_is_stopped_at_the_limit() {
    // The review's attack: every level multiplies by ten. Twelve levels of
    // 256 bytes would be 256 TB.
    let c = ctx_with(&[("x", t(&"a".repeat(256)))]);
    let src = nested_replace(12);
    let (f, reached) = value_err(&src, &c);
    assert_eq!(f, "Replace");
    // Level 3 is 256 000 bytes: refused there, without building it.
    assert_eq!(reached, 256_000);
    let err = p(&src).eval(&c).unwrap_err().to_string();
    assert!(err.contains("max_value_bytes"), "{err}");
    assert!(err.contains("256000"), "{err}");
}

#[test]
fn static_check_refuses_nested_replace() {
    let e = p(&nested_replace(3));
    let err = e.check_limits(&Limits::DEFAULT).unwrap_err();
    match &err {
        StaticLimitError::ValueBytes {
            function,
            column,
            reached,
            limit,
        } => {
            assert_eq!((*function, *column, *limit), ("Replace", 1, 64 * KIB));
            // 128 bytes times 10 three times.
            assert!(*reached >= 128_000, "{reached}");
        }
        other => panic!("expected a value bound, got {other}"),
    }
    assert!(err.to_string().contains("max_value_bytes"), "{err}");
    // Twelve levels saturate without overflowing.
    // Twelve levels saturate nothing and name the first level over the
    // limit (the third from the inside, at column 8 * 9 + 1).
    match p(&nested_replace(12)).check_limits(&Limits::DEFAULT) {
        Err(StaticLimitError::ValueBytes {
            column, reached, ..
        }) => {
            assert_eq!(column, 73);
            assert!((128_000..150_000).contains(&reached), "{reached}");
        }
        other => panic!("{other:?}"),
    }
    // Two levels (12.8 KB from 128 bytes) pass.
    assert!(p(&nested_replace(2)).check_limits(&Limits::DEFAULT).is_ok());
}

#[test]
fn static_check_sees_growth_through_every_growing_function() {
    let refused = [
        // Join of many copies with a long separator.
        format!(r#"Join("{}", [a], [b], [c], [d])"#, "-".repeat(9000)),
        // Template replace multiplying the source.
        format!(r#"Replace([x], "X", , , , , "{}")"#, "X".repeat(600)),
        // Group references repeating the match.
        format!(r#"Replace([x], , "a", , "{}", , )"#, "$0".repeat(600)),
        // A replacement that is itself a grown value, two levels.
        format!(
            r#"Replace([x], "a", , , Replace([y], "b", , , "{}", , ), , )"#,
            "c".repeat(40)
        ),
    ];
    for src in &refused {
        let err = p(src).check_limits(&Limits::DEFAULT);
        assert!(err.is_err(), "{src}: {:?}", p(src).worst_case());
    }
}

#[test]
fn static_check_accepts_ordinary_mappings() {
    for src in [
        r#"Switch([IsSoftDeleted], , "False", "True", "True", "False")"#,
        r#"Join(" ", [givenName], [surname])"#,
        r#"ToLower(Replace(NormalizeDiacritics(StripSpaces(Join(".", [givenName], [surname]))), , "[^a-z.]", , "", , ))"#,
        r#"Append(Left([mailNickname], 8), "@contoso.com")"#,
        r#"FormatDateTime([StatusHireDate], , "yyyy-MM-ddzzz", "yyyyMMddHHmmss.fZ")"#,
        r#"IIF([country]="USA", [country], [department])"#,
        r#"SelectUniqueValue(Join("@", NormalizeDiacritics(StripSpaces([firstName])), [domain]), Join("@", Mid(NormalizeDiacritics(StripSpaces([firstName])), 1, 1), [domain]))"#,
        r#"Replace([mail], "@contoso.com", , , "@fabrikam.com", , )"#,
        r#"Replace([telephoneNumber], , "\+(?<cc>\d+) ", "cc", "00", , )"#,
        r#"Split(Join(",", [proxyAddresses]), ",")"#,
    ] {
        let wc = p(src)
            .check_limits(&Limits::DEFAULT)
            .unwrap_or_else(|e| panic!("{src}: {e}"));
        assert!(wc.depth <= MAX_DEPTH);
    }
}

#[test]
fn linear_text_functions_keep_their_results() {
    // InStr with a long needle (was quadratic), case-insensitive included.
    let c = ctx_with(&[
        ("hay", t(&format!("{}b", "a".repeat(20_000)))),
        ("needle", t(&format!("{}B", "A".repeat(10_000)))),
    ]);
    assert_eq!(
        p("InStr([hay], [needle], , vbTextCompare)")
            .eval(&c)
            .unwrap(),
        Value::Integer(10_001)
    );
    assert_eq!(
        p("InStr([hay], [needle])").eval(&c).unwrap(),
        Value::Integer(0)
    );
    let c = ctx_with(&[("x", t("xİstanbul İST"))]);
    assert_eq!(
        p(r#"InStr([x], "i̇st", 3, vbTextCompare)"#)
            .eval(&c)
            .unwrap(),
        Value::Integer(0)
    );
    assert_eq!(
        p(r#"InStr([x], "İST", 3, vbTextCompare)"#)
            .eval(&c)
            .unwrap(),
        Value::Integer(11)
    );
    assert_eq!(
        p(r#"InStr("ÀbcÀBC", "àbc", 2, 1)"#).eval(&c).unwrap(),
        Value::Integer(4)
    );
    // Word and PCase with long delimiter lists.
    let delims: String = (0..3000u32)
        .filter_map(char::from_u32)
        .filter(|c| !c.is_alphanumeric() && *c != '"' && *c != '\\')
        .collect();
    let src = format!(r#"Word("one two-three", 3, "{delims}")"#);
    assert_eq!(p(&src).eval(&c).unwrap(), t("three"));
}

/// Figures for the report: the nested-Replace attack with the limits on
/// and off. `cargo test -p provisio --lib nested_replace_measure --
/// --ignored --nocapture --test-threads=1`.
#[test]
#[ignore = "a measurement; prints figures"]
fn nested_replace_measure() {
    use crate::metrics::peak_rss_kib;
    let c = ctx_with(&[("x", t(&"a".repeat(256)))]);
    let unlimited = Limits {
        max_value_bytes: usize::MAX,
        max_total_bytes: usize::MAX,
        max_steps: usize::MAX,
    };
    // Bounded first: the peak-RSS figure only rises.
    for (label, levels, limits) in [
        ("limits on ", 12, Limits::DEFAULT),
        ("limits on ", 30, Limits::DEFAULT),
        ("limits off", 5, unlimited),
        ("limits off", 6, unlimited),
    ] {
        let e = p(&nested_replace(levels));
        let before = peak_rss_kib();
        let t0 = std::time::Instant::now();
        let (r, (steps, bytes)) = e.eval_metered(&c, limits);
        let took = t0.elapsed();
        let after = peak_rss_kib();
        let outcome = match &r {
            Ok(Value::Text(s)) => format!("{} bytes", s.len()),
            Ok(v) => format!("{v:?}"),
            Err(e) => format!("refused: {e}"),
        };
        println!(
            "{label} {levels:>2} levels ({} chars): {took:?}, peak RSS +{} KiB, {steps} steps, \
             {bytes} bytes charged; {outcome}",
            e.source().len(),
            after.saturating_sub(before),
        );
    }
}
