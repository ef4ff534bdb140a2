use std::io::Write as _;

use super::*;

fn err(arg: &str) -> String {
    match parse_header(arg) {
        Err(e) => e.to_string(),
        Ok((n, _)) => panic!("`{arg}` should be refused, got header `{n}`"),
    }
}

#[test]
fn parses_name_and_value() {
    let (n, v) = parse_header("authorization:Bearer abc.def.ghi").unwrap();
    assert_eq!(n, http::header::AUTHORIZATION);
    assert_eq!(v, "Bearer abc.def.ghi");
}

#[test]
fn blanks_around_the_value_and_name_are_dropped_and_names_lowercased() {
    let (n, v) = parse_header("  Authorization :  Bearer x \t").unwrap();
    assert_eq!(n.as_str(), "authorization");
    assert_eq!(v, "Bearer x");
}

#[test]
fn splits_at_the_first_colon_only() {
    let (n, v) = parse_header("x-url: https://a.test:8443/p").unwrap();
    assert_eq!(n.as_str(), "x-url");
    assert_eq!(v, "https://a.test:8443/p");
}

#[test]
fn an_empty_value_is_allowed() {
    let (_, v) = parse_header("x-empty:").unwrap();
    assert_eq!(v, "");
}

#[test]
fn refuses_missing_colon_and_empty_name() {
    assert_eq!(
        err("authorization Bearer x"),
        "header argument: expected `NAME:VALUE`"
    );
    assert_eq!(err(": value"), "header argument: empty header name");
}

#[test]
fn refuses_invalid_names() {
    for arg in ["bad name: x", "bad\u{e9}: x", "a(b): x", "x\ny: z"] {
        assert!(err(arg).contains("not a valid header name"), "{arg}");
    }
}

#[test]
fn refuses_values_that_could_inject_headers() {
    for arg in ["x-a: one\r\nx-b: two", "x-a: one\ntwo", "x-a: nul\0"] {
        assert_eq!(
            err(arg),
            "header `x-a`: value has forbidden characters",
            "{arg:?}"
        );
    }
}

#[test]
fn refuses_headers_the_load_generator_owns() {
    for name in RESERVED_HEADERS {
        let upper = name.to_ascii_uppercase();
        assert_eq!(
            err(&format!("{upper}: x")),
            format!("header `{name}`: set by the load generator")
        );
    }
}

#[test]
fn refuses_overlong_values_without_echoing_them() {
    let secret = "s".repeat(MAX_HEADER_VALUE_BYTES + 1);
    let e = err(&format!("authorization: {secret}"));
    assert_eq!(e, "header `authorization`: value too long");
    let (_, v) = parse_header(&format!(
        "authorization:{}",
        "s".repeat(MAX_HEADER_VALUE_BYTES)
    ))
    .unwrap();
    assert_eq!(v.len(), MAX_HEADER_VALUE_BYTES);
}

#[test]
fn errors_never_contain_the_value() {
    let e = err("authorization: Bearer secret-token\r\n");
    assert!(!e.contains("secret"), "{e}");
}

#[test]
fn applies_fixed_headers_in_order_and_keeps_duplicates() {
    let h = ExtraHeaders::from_args(
        &[
            "authorization: Bearer a".to_owned(),
            "x-extra: 1".to_owned(),
            "x-extra: 2".to_owned(),
        ],
        None,
    )
    .unwrap();
    let mut map = HeaderMap::new();
    h.apply(&mut map);
    assert_eq!(map.len(), 3);
    assert_eq!(map.get("authorization").unwrap(), "Bearer a");
    let extra: Vec<_> = map.get_all("x-extra").iter().collect();
    assert_eq!(extra, ["1", "2"]);
}

#[test]
fn no_arguments_add_nothing() {
    let h = ExtraHeaders::from_args(&[], None).unwrap();
    let mut map = HeaderMap::new();
    h.apply(&mut map);
    assert!(map.is_empty());
}

#[test]
fn refuses_too_many_headers() {
    let args: Vec<String> = (0..=MAX_EXTRA_HEADERS)
        .map(|i| format!("x-h{i}: v"))
        .collect();
    assert!(matches!(
        ExtraHeaders::from_args(&args, None),
        Err(LoadgenError::OutOfBounds {
            what: "header count",
            ..
        })
    ));
    assert!(ExtraHeaders::from_args(&args[..MAX_EXTRA_HEADERS], None).is_ok());
}

fn values_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[test]
fn rotating_header_cycles_through_the_file_lines() {
    let f = values_file("Bearer one\n\nBearer two\r\nBearer three\n");
    let arg = format!("Authorization:{}", f.path().display());
    let h = ExtraHeaders::from_args(&[], Some(&arg)).unwrap();
    let r = h.rotating().unwrap();
    assert_eq!(r.name().as_str(), "authorization");
    assert_eq!(r.len(), 3);
    let mut seen = Vec::new();
    for _ in 0..7 {
        let mut map = HeaderMap::new();
        h.apply(&mut map);
        assert_eq!(map.len(), 1);
        seen.push(
            map.get("authorization")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(
        seen,
        [
            "Bearer one",
            "Bearer two",
            "Bearer three",
            "Bearer one",
            "Bearer two",
            "Bearer three",
            "Bearer one"
        ]
    );
}

#[test]
fn rotating_header_comes_after_the_fixed_ones() {
    let f = values_file("r1\n");
    let arg = format!("x-r: {}", f.path().display());
    let h = ExtraHeaders::from_args(&["x-f: f".to_owned()], Some(&arg)).unwrap();
    let mut map = HeaderMap::new();
    h.apply(&mut map);
    let names: Vec<_> = map.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["x-f", "x-r"]);
}

#[test]
fn refuses_an_empty_rotation_file() {
    let f = values_file("\n  \n");
    let arg = format!("authorization:{}", f.path().display());
    let e = ExtraHeaders::from_args(&[], Some(&arg)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "header `authorization`: no values to rotate through"
    );
}

#[test]
fn refuses_a_rotation_file_with_a_bad_line_without_echoing_it() {
    let f = values_file("Bearer good\nBearer secret\u{1}\n");
    let arg = format!("authorization:{}", f.path().display());
    let e = ExtraHeaders::from_args(&[], Some(&arg))
        .unwrap_err()
        .to_string();
    assert_eq!(e, "header `authorization`: value has forbidden characters");
}

#[test]
fn refuses_a_missing_rotation_file_and_a_reserved_name() {
    let e = ExtraHeaders::from_args(&[], Some("authorization:/nonexistent/tokens.txt"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("cannot read header values from `/nonexistent/tokens.txt`"),
        "{e}"
    );
    let f = values_file("x\n");
    let arg = format!("host:{}", f.path().display());
    assert_eq!(
        ExtraHeaders::from_args(&[], Some(&arg))
            .unwrap_err()
            .to_string(),
        "header `host`: set by the load generator"
    );
}

#[test]
fn rotation_cannot_be_built_empty() {
    assert!(Rotating::new(http::header::AUTHORIZATION, Vec::new()).is_err());
}
