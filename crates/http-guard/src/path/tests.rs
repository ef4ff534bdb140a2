use proptest::prelude::*;

use super::*;

/// Accepted paths and their normal form.
const ACCEPTED: &[(&str, &str)] = &[
    // unchanged
    ("/", "/"),
    ("/a", "/a"),
    ("/a/b/", "/a/b/"),
    ("/ADMIN", "/ADMIN"),
    ("/Admin/Users", "/Admin/Users"),
    ("/a-b_c.d~e", "/a-b_c.d~e"),
    ("/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,="),
    ("/...", "/..."),
    ("/a/.../b", "/a/.../b"),
    (
        "/.well-known/openid-configuration",
        "/.well-known/openid-configuration",
    ),
    ("/a..b", "/a..b"),
    ("/%20", "/%20"),
    // duplicate slashes merged
    ("//admin", "/admin"),
    ("//a///b", "/a/b"),
    ("//", "/"),
    ("///", "/"),
    ("/a//", "/a/"),
    // dot segments (RFC 3986 §5.2.4)
    ("/a/./b/../c", "/a/c"),
    ("/.", "/"),
    ("/./", "/"),
    ("/a/.", "/a/"),
    ("/a/..", "/"),
    ("/a/../", "/"),
    ("/a/b/..", "/a/"),
    ("/a/b/../..", "/"),
    ("/a/b/../../c", "/c"),
    ("/admin/./", "/admin/"),
    ("/admin/%2e/", "/admin/"),
    ("/admin/%2E", "/admin/"),
    ("/a/%2e%2e/b", "/b"),
    ("/a/.%2e/b", "/b"),
    ("/a/%2e./b", "/b"),
    ("/a/.%2E.", "/a/..."),
    // unreserved escapes decoded, one pass only
    ("/%61dmin", "/admin"),
    ("/%41%44%4D%49%4E", "/ADMIN"),
    ("/%7e%2d%5f", "/~-_"),
    ("/%252e%252e/", "/%252e%252e/"),
    ("/%252E", "/%252E"),
    ("/%25", "/%25"),
    ("/%2500", "/%2500"),
    // other escapes kept, hex uppercased
    ("/a%3fb", "/a%3Fb"),
    ("/caf%c3%a9", "/caf%C3%A9"),
    ("/%e2%80%ae", "/%E2%80%AE"),
    ("/%40", "/%40"),
    ("/%3a", "/%3A"),
];

#[test]
fn accepted_paths_normalise_as_documented() {
    for (raw, want) in ACCEPTED {
        let got = normalize_path(raw).unwrap_or_else(|e| panic!("{raw:?} refused: {e}"));
        assert_eq!(got.as_str(), *want, "input {raw:?}");
        assert_eq!(got.was_changed(), raw != want, "changed flag for {raw:?}");
    }
}

#[test]
fn escape_of_hash_keeps_literal_text_after_it() {
    // `%23` is kept; the `b` after it is literal text and keeps its case.
    assert_eq!(normalize_path("/a%23b").unwrap().as_str(), "/a%23b");
}

#[test]
fn characters_not_allowed_raw_are_encoded() {
    let cases = [
        ("/a|b", "/a%7Cb"),
        ("/a\"b", "/a%22b"),
        ("/<x>", "/%3Cx%3E"),
        ("/[1]", "/%5B1%5D"),
        ("/a^b", "/a%5Eb"),
        ("/a`b", "/a%60b"),
        ("/{id}", "/%7Bid%7D"),
    ];
    for (raw, want) in cases {
        let got = normalize_path(raw).unwrap();
        assert_eq!(got.as_str(), want, "input {raw:?}");
        assert!(got.was_changed());
        // The escaped spelling is the same path.
        assert_eq!(normalize_path(want).unwrap().as_str(), want);
    }
}

/// Refused paths and the reason code each must give.
const REFUSED: &[(&str, &str)] = &[
    // not origin-form
    ("", "not_origin_form"),
    ("admin", "not_origin_form"),
    ("*", "not_origin_form"),
    ("http://example.com/", "not_origin_form"),
    ("%2Fadmin", "not_origin_form"),
    ("/a?b", "not_origin_form"),
    ("/a#b", "not_origin_form"),
    // Tomcat / Jetty / Spring path-parameter bypasses
    ("/admin/..;/", "path_parameter"),
    ("/..;/admin", "path_parameter"),
    ("/admin;x/..", "path_parameter"),
    ("/admin;jsessionid=1", "path_parameter"),
    ("/a%3Bx", "path_parameter"),
    ("/a%3bx", "path_parameter"),
    // above the root, raw or decoded
    ("/..", "above_root"),
    ("/../", "above_root"),
    ("/../admin", "above_root"),
    ("/a/../..", "above_root"),
    ("/a/../../b", "above_root"),
    ("/%2e%2e/admin", "above_root"),
    ("/%2E%2E/admin", "above_root"),
    ("/.%2e/admin", "above_root"),
    ("/%2e./admin", "above_root"),
    ("/./../admin", "above_root"),
    ("//../admin", "above_root"),
    // encoded slash
    ("/admin%2f", "encoded_slash"),
    ("/admin%2F", "encoded_slash"),
    ("/admin%2f..", "encoded_slash"),
    ("/a%2f..%2fadmin", "encoded_slash"),
    ("/%2f/admin", "encoded_slash"),
    // backslash, raw and encoded
    ("/admin\\..\\", "backslash"),
    ("/a\\b", "backslash"),
    ("/a%5Cb", "backslash"),
    ("/a%5cb", "backslash"),
    ("/..%5c..%5cwindows", "backslash"),
    // control characters, raw and encoded
    ("/admin%00.json", "control_char"),
    ("/a%0Ab", "control_char"),
    ("/a%0d%0aSet-Cookie:x", "control_char"),
    ("/a%09", "control_char"),
    ("/a%1f", "control_char"),
    ("/a%7F", "control_char"),
    ("/a\0b", "control_char"),
    ("/a\nb", "control_char"),
    ("/a\tb", "control_char"),
    ("/a\u{7f}", "control_char"),
    // raw bytes outside printable ASCII
    ("/a b", "non_ascii"),
    ("/café", "non_ascii"),
    ("/\u{202e}", "non_ascii"),
    ("/ａdmin", "non_ascii"),
    // invalid percent-encoding
    ("/%", "bad_percent_encoding"),
    ("/a%", "bad_percent_encoding"),
    ("/%4", "bad_percent_encoding"),
    ("/%zz", "bad_percent_encoding"),
    ("/%g0", "bad_percent_encoding"),
    ("/%0g", "bad_percent_encoding"),
    ("/%%30%30", "bad_percent_encoding"),
    ("/%u002e", "bad_percent_encoding"),
    ("/%+1", "bad_percent_encoding"),
];

#[test]
fn refused_paths_give_their_reason() {
    for (raw, code) in REFUSED {
        match normalize_path(raw) {
            Ok(p) => panic!("{raw:?} accepted as {:?}", p.as_str()),
            Err(e) => assert_eq!(e.reason_code(), *code, "input {raw:?}: {e}"),
        }
    }
}

#[test]
fn errors_are_checked_in_segments_later_removed() {
    // A bad byte in a segment that `..` removes is still refused.
    assert_eq!(
        normalize_path("/a%00/.."),
        Err(PathError::ControlChar { byte: 0 })
    );
    assert_eq!(
        normalize_path("/%zz/.."),
        Err(PathError::BadPercentEncoding)
    );
}

#[test]
fn error_variants_carry_the_byte() {
    assert_eq!(
        normalize_path("/a%00"),
        Err(PathError::ControlChar { byte: 0 })
    );
    assert_eq!(
        normalize_path("/a b"),
        Err(PathError::NonAscii { byte: b' ' })
    );
    assert_eq!(
        normalize_path("/é"),
        Err(PathError::NonAscii { byte: 0xC3 })
    );
    assert_eq!(normalize_path("/a%5C"), Err(PathError::EncodedBackslash));
    assert_eq!(normalize_path("/a\\"), Err(PathError::Backslash));
}

#[test]
fn length_limit_applies_to_raw_and_output() {
    let at_limit = format!("/{}", "a".repeat(MAX_PATH_LEN - 1));
    assert_eq!(normalize_path(&at_limit).unwrap().as_str(), at_limit);

    let over = format!("/{}", "a".repeat(MAX_PATH_LEN));
    let err = normalize_path(&over).unwrap_err();
    assert_eq!(err, PathError::TooLong { max: MAX_PATH_LEN });
    assert_eq!(err.reason_code(), "too_long");
    assert_eq!(err.status(), StatusCode::URI_TOO_LONG);

    // Encoding `|` triples its size: the output limit applies too, so the
    // output is always accepted again.
    let grows = format!("/{}", "|".repeat(MAX_PATH_LEN / 2));
    assert_eq!(
        normalize_path(&grows),
        Err(PathError::TooLong { max: MAX_PATH_LEN })
    );
}

#[test]
fn segment_limit_counts_raw_slashes() {
    let at_limit = "/a".repeat(MAX_PATH_SEGMENTS);
    assert!(normalize_path(&at_limit).is_ok());
    let over = "/a".repeat(MAX_PATH_SEGMENTS + 1);
    assert_eq!(
        normalize_path(&over),
        Err(PathError::TooManySegments {
            max: MAX_PATH_SEGMENTS
        })
    );
    // Empty segments count: merging happens after the limit.
    let slashes = "/".repeat(MAX_PATH_SEGMENTS + 1);
    assert_eq!(
        normalize_path(&slashes).unwrap_err().reason_code(),
        "too_long"
    );
}

#[test]
fn every_reason_code_is_in_the_documented_set() {
    let documented = [
        "encoded_slash",
        "backslash",
        "path_parameter",
        "control_char",
        "bad_percent_encoding",
        "above_root",
        "not_origin_form",
        "too_long",
        "non_ascii",
    ];
    for (_, code) in REFUSED {
        assert!(documented.contains(code), "{code}");
    }
    for code in documented {
        let seen = REFUSED.iter().any(|(_, c)| *c == code) || code == "too_long";
        assert!(seen, "no test case for {code}");
    }
}

#[test]
fn errors_display_lowercase_without_period() {
    for (raw, _) in REFUSED {
        let msg = normalize_path(raw).unwrap_err().to_string();
        assert!(!msg.ends_with('.'), "{msg}");
        assert_eq!(
            msg.chars().next(),
            msg.chars().next().map(|c| c.to_ascii_lowercase())
        );
        assert_eq!(
            normalize_path(raw).unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
    }
}

#[test]
fn normalized_path_accessors() {
    let p = normalize_path("//a/./b").unwrap();
    assert!(p.was_changed());
    assert_eq!(p.to_string(), "/a/b");
    assert_eq!(p.as_ref(), "/a/b");
    assert!(p == "/a/b");
    assert_eq!(p.into_string(), "/a/b");
    assert!(!normalize_path("/a/b").unwrap().was_changed());
}

#[test]
fn query_checks() {
    let ok = [
        "",
        "a=1&b=2",
        "q=%00%zz",
        "x=%",
        "redirect=https://e.com/?a=b",
        "a=|{}",
    ];
    for q in ok {
        assert_eq!(check_query(q), Ok(()), "{q:?}");
    }
    let refused: [(&str, &str); 7] = [
        ("a=\0", "control_char"),
        ("a=\r\nb", "control_char"),
        ("a=\u{7f}", "control_char"),
        ("a=b c", "non_ascii"),
        ("q=é", "non_ascii"),
        ("a=1#frag", "not_origin_form"),
        ("a=\t", "control_char"),
    ];
    for (q, code) in refused {
        assert_eq!(check_query(q).unwrap_err().reason_code(), code, "{q:?}");
    }
    let at_limit = "a".repeat(MAX_QUERY_LEN);
    assert_eq!(check_query(&at_limit), Ok(()));
    let over = "a".repeat(MAX_QUERY_LEN + 1);
    let err = check_query(&over).unwrap_err();
    assert_eq!(err, PathError::QueryTooLong { max: MAX_QUERY_LEN });
    assert_eq!(err.status(), StatusCode::URI_TOO_LONG);
}

/// Building blocks for generated paths: separators, dot segments in all
/// spellings, escapes of every class and the forbidden characters.
const PIECES: &[&str] = &[
    "/", "/", "/", ".", "..", "%2e", "%2E", "a", "B", "z9", "~", "-", "_", "%41", "%7e", "%25",
    "%2f", "%2F", "%5c", "%3b", "%3B", ";", "\\", "%", "%4", "%zz", "%00", "%1F", "%7f", "%20",
    "%3f", "%C3%A9", "|", "{", " ", "é", "\t", "?", "#", ":", "@", "+",
];

/// Pieces of paths that are mostly accepted, so the output properties are
/// exercised on many outputs, not only on errors.
const BENIGN_PIECES: &[&str] = &[
    "/", "/", "/", ".", "..", "%2e", "%2E", "a", "B", "z9", "~", "%41", "%7e", "%25", "%20", "%3f",
    "%C3%A9", "|", "{", ":", "@", "+",
];

fn generated_path(pieces: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(pieces), 0..24)
        .prop_map(|parts| format!("/{}", parts.concat()))
}

fn assert_normal_form(out: &str) {
    assert!(out.starts_with('/'), "{out:?}");
    for bad in [
        "//", "/./", "/../", "%2F", "%2f", "%5C", "%5c", "\\", ";", "%3B", "%2E", "%2e",
    ] {
        assert!(!out.contains(bad), "{out:?} contains {bad:?}");
    }
    assert!(!out.ends_with("/.") && !out.ends_with("/.."), "{out:?}");
    assert!(out.bytes().all(|b| b.is_ascii_graphic()), "{out:?}");
    assert!(out.len() <= MAX_PATH_LEN);
    // Every escape is well-formed, uppercase, and not of an unreserved,
    // control or forbidden byte.
    let bytes = out.as_bytes();
    for (i, _) in out.match_indices('%') {
        let hex = &bytes[i + 1..i + 3];
        assert!(
            hex.iter()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()),
            "{out:?}"
        );
        let v = u8::from_str_radix(std::str::from_utf8(hex).unwrap(), 16).unwrap();
        assert!(!is_unreserved(v), "{out:?} escapes unreserved {v:#x}");
        assert!(v >= 0x20 && v != 0x7F, "{out:?} escapes control {v:#x}");
    }
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_strings(s in any::<String>()) {
        let _ = normalize_path(&s);
        let _ = normalize_path(&format!("/{s}"));
        let _ = check_query(&s);
    }

    #[test]
    fn output_is_normal_and_idempotent(
        raw in prop_oneof![generated_path(PIECES), generated_path(BENIGN_PIECES)]
    ) {
        if let Ok(out) = normalize_path(&raw) {
            assert_normal_form(out.as_str());
            let again = normalize_path(out.as_str()).unwrap();
            prop_assert_eq!(again.as_str(), out.as_str());
            prop_assert!(!again.was_changed());
        }
    }

    #[test]
    fn output_is_normal_for_arbitrary_ascii(raw in "/[ -~]{0,64}") {
        if let Ok(out) = normalize_path(&raw) {
            assert_normal_form(out.as_str());
            let again = normalize_path(out.as_str()).unwrap();
            prop_assert_eq!(again.as_str(), out.as_str());
            prop_assert!(!again.was_changed());
        }
    }

    #[test]
    fn escaping_unreserved_characters_changes_nothing(
        segs in prop::collection::vec("[A-Za-z0-9._~-]{0,6}", 0..8)
    ) {
        let plain = format!("/{}", segs.join("/"));
        let escaped: String = plain
            .bytes()
            .map(|b| if b == b'/' { "/".to_owned() } else { format!("%{b:02x}") })
            .collect();
        prop_assert_eq!(
            normalize_path(&plain).map(NormalizedPath::into_string),
            normalize_path(&escaped).map(NormalizedPath::into_string)
        );
    }

    #[test]
    fn forbidden_bytes_are_refused_anywhere(
        prefix in "[a-z/]{0,8}",
        bad in prop::sample::select(&[";", "\\", "%2f", "%2F", "%5C", "%3B", "%00", "%0a", "\0", " "][..]),
        suffix in "[a-z/.]{0,8}",
    ) {
        let raw = format!("/{prefix}{bad}{suffix}");
        prop_assert!(normalize_path(&raw).is_err(), "{:?} accepted", raw);
    }
}

#[test]
fn benign_generator_mostly_yields_accepted_paths() {
    // Guards the property tests above against testing only the error path.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = generated_path(BENIGN_PIECES);
    let accepted = (0..200)
        .filter(|_| {
            let raw = strategy.new_tree(&mut runner).unwrap().current();
            normalize_path(&raw).is_ok()
        })
        .count();
    assert!(accepted >= 50, "only {accepted} of 200 accepted");
}

/// An independent model of dot-segment removal on decoded segments.
fn model(raw: &str) -> Option<String> {
    let segs: Vec<&str> = raw.strip_prefix('/')?.split('/').collect();
    let mut stack: Vec<&str> = Vec::new();
    for seg in &segs {
        match *seg {
            "" | "." => {}
            ".." => {
                stack.pop()?;
            }
            s => stack.push(s),
        }
    }
    let trailing = matches!(segs.last(), Some(&("" | "." | "..")));
    let mut out = format!("/{}", stack.join("/"));
    if trailing && !stack.is_empty() {
        out.push('/');
    }
    Some(out)
}

proptest! {
    #[test]
    fn dot_segment_removal_matches_model(
        segs in prop::collection::vec(
            prop::sample::select(&["", ".", "..", "a", "b", "...", ".a"][..]), 0..12)
    ) {
        let raw = format!("/{}", segs.join("/"));
        let got = normalize_path(&raw).ok().map(NormalizedPath::into_string);
        prop_assert_eq!(got, model(&raw), "input {:?}", raw);
    }
}
