use super::*;

#[test]
fn parses_objects() {
    let m = parse_object(br#"{"a":1,"b":[true,null,"x"],"c":{"d":-2.5}}"#).unwrap();
    assert_eq!(m["a"], 1);
    assert_eq!(m["b"][2], "x");
    assert_eq!(m["c"]["d"], -2.5);
}

#[test]
fn refuses_duplicate_top_level_member() {
    assert_eq!(
        parse_object(br#"{"exp":1,"exp":2}"#),
        Err(JsonFault::Duplicate)
    );
}

#[test]
fn refuses_duplicate_nested_member() {
    let bad = br#"{"a":{"b":[{"c":1,"c":1}]}}"#;
    assert_eq!(parse_object(bad), Err(JsonFault::Duplicate));
}

#[test]
fn refuses_duplicates_hidden_by_escapes() {
    assert_eq!(
        parse_object(br#"{"alg":"ES256","\u0061lg":"none"}"#),
        Err(JsonFault::Duplicate)
    );
}

#[test]
fn same_name_in_sibling_objects_is_fine() {
    assert!(parse_object(br#"{"a":{"x":1},"b":{"x":2}}"#).is_ok());
}

#[test]
fn refuses_non_objects() {
    for v in [&b"[]"[..], b"1", b"\"s\"", b"null", b"true"] {
        assert_eq!(parse_object(v), Err(JsonFault::NotObject));
    }
}

#[test]
fn refuses_syntax_errors_and_trailing_data() {
    for v in [
        &b""[..],
        b"{",
        b"{\"a\":1}x",
        b"{\"a\":1}{}",
        b"{'a':1}",
        b"{\"a\":01}",
        b"{\"a\":1e999}",
        b"{\"a\":\"\xff\"}",
        b"{\"a\":\"\\ud800\"}",
    ] {
        assert_eq!(parse_object(v), Err(JsonFault::Syntax), "{v:?}");
    }
}

#[test]
fn accepts_surrounding_whitespace() {
    assert!(parse_object(b" \n{\"a\" : 1}\t").is_ok());
}

#[test]
fn depth_limit_is_exact() {
    let ok = format!(
        "{}{}",
        "[".repeat(MAX_JSON_DEPTH),
        "]".repeat(MAX_JSON_DEPTH)
    );
    assert!(parse_value(ok.as_bytes()).is_ok());
    let deep = format!(
        "{}{}",
        "[".repeat(MAX_JSON_DEPTH + 1),
        "]".repeat(MAX_JSON_DEPTH + 1)
    );
    assert_eq!(parse_value(deep.as_bytes()), Err(JsonFault::TooDeep));
}

#[test]
fn very_deep_nesting_is_refused_without_overflow() {
    let deep = format!("{}{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    assert_eq!(parse_value(deep.as_bytes()), Err(JsonFault::TooDeep));
}

#[test]
fn big_integers_become_floats() {
    let m = parse_object(br#"{"n":123456789012345678901234567890}"#).unwrap();
    assert!(m["n"].is_f64());
}
