use super::*;

fn segs(p: &str) -> Vec<Segment> {
    Pattern::parse(p).unwrap().segments().to_vec()
}

#[test]
fn parses_each_segment_kind() {
    assert_eq!(segs("/"), []);
    assert_eq!(
        segs("/api/{tenant}/*/**"),
        [
            Segment::Literal("api".into()),
            Segment::Param(Name::new("tenant")),
            Segment::Star,
            Segment::Rest,
        ]
    );
    assert_eq!(segs("/**"), [Segment::Rest]);
    assert_eq!(Pattern::any().segments(), [Segment::Rest]);
}

#[test]
fn literals_keep_case_and_encoded_bytes() {
    assert_eq!(
        segs("/API/a%20b/v1.2"),
        [
            Segment::Literal("API".into()),
            Segment::Literal("a%20b".into()),
            Segment::Literal("v1.2".into()),
        ]
    );
}

#[test]
fn captures_name_the_segment_index() {
    let p = Pattern::parse("/t/{tenant}/x/{id}/**").unwrap();
    assert_eq!(
        p.captures(),
        vec![(Name::new("tenant"), 1), (Name::new("id"), 3)]
    );
    assert!(Pattern::parse("/t/*").unwrap().captures().is_empty());
}

#[test]
fn rejects_malformed_patterns() {
    for bad in [
        "", "x", "/a/", "//", "/a//b", "/**/a", "/a/**/**", "/{}", "/{a", "/a}", "/{a}{b}", "/*a",
        "/a*", "/**x", "/.", "/..", "/a b", "/a#b", "/a\tb", "/{a}/{a}", "/{a.b}",
    ] {
        assert!(Pattern::parse(bad).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn literals_must_be_spelled_as_normalised_paths_spell_them() {
    // Spelled otherwise: the message names the normal form.
    for (bad, normal) in [
        ("/api/café/**", "caf%C3%A9"),
        ("/api/%7Eadmin/**", "~admin"),
        ("/api/%41dmin", "Admin"),
        ("/a%3fb", "a%3Fb"),
        ("/a|b", "a%7Cb"),
        ("/a/[x]", "%5Bx%5D"),
        ("/a/\"q\"", "%22q%22"),
    ] {
        let e = Pattern::parse(bad).unwrap_err().to_string();
        assert!(e.contains(&format!("`{normal}`")), "{bad}: {e}");
    }
    // Refused by the normalisation: no request path holds them.
    for bad in [
        "/a;b",
        "/a\\b",
        "/a%2Fb",
        "/a%2fb",
        "/a%5Cb",
        "/a%3Bb",
        "/a%00",
        "/a/%",
        "/a/%4",
        "/a/%zz",
        "/a/%2E%2E",
        "/a/%2e",
    ] {
        let e = Pattern::parse(bad).unwrap_err().to_string();
        assert!(
            e.contains("never appears in a normalised path"),
            "{bad}: {e}"
        );
    }
    // Already normal: kept as written.
    for good in [
        "/api/caf%C3%A9/**",
        "/api/~admin",
        "/a%3Fb",
        "/a%7Cb",
        "/a%25b",
        "/a%20b",
        "/a:b@c!$&'()+,=",
        "/v1.2/x-y_z",
    ] {
        assert!(Pattern::parse(good).is_ok(), "{good}");
    }
}

fn split(p: &str) -> Option<Vec<&str>> {
    split_request_path(p).map(PathSegments::to_vec)
}

#[test]
fn request_paths_split_on_slashes() {
    assert_eq!(split("/"), Some(vec![]));
    assert_eq!(split("/a"), Some(vec!["a"]));
    assert_eq!(split("/a/b/c"), Some(vec!["a", "b", "c"]));
}

#[test]
fn one_trailing_slash_is_ignored() {
    assert_eq!(split("/a/b/"), Some(vec!["a", "b"]));
    assert_eq!(split("/a/"), Some(vec!["a"]));
}

#[test]
fn unnormalised_request_paths_are_refused() {
    for bad in [
        "", "a/b", "//", "/a//", "/a//b", "//a", "/./a", "/a/..", "/a/../b", "/a/.", "/a?b=1",
        "/a#x", "/a\nb", "/a\0", "/a\x7f",
    ] {
        assert_eq!(split(bad), None, "{bad:?} should be refused");
    }
    // Dots inside a segment are ordinary characters.
    assert_eq!(split("/a.b/..c/.d"), Some(vec!["a.b", "..c", ".d"]));
}

#[test]
fn long_request_paths_keep_their_count() {
    let long = "/a".repeat(MAX_PATTERN_SEGMENTS + 10);
    let segs = split_request_path(&long).unwrap();
    assert_eq!(segs.len(), MAX_PATTERN_SEGMENTS + 10);
    assert_eq!(segs.get(0), Some("a"));
    assert_eq!(segs.get(MAX_PATTERN_SEGMENTS), Some("a"));
    assert_eq!(segs.get(MAX_PATTERN_SEGMENTS + 1), None);
    assert_eq!(segs.get(MAX_PATTERN_SEGMENTS + 10), None);
}

#[test]
fn a_pattern_can_match_under_a_prefix_only_where_its_segments_agree() {
    let under = |p: &str, prefix: &[&str]| Pattern::parse(p).unwrap().can_match_under(prefix);
    assert!(under("/api/**", &["api"]));
    assert!(under("/api", &["api"]));
    assert!(under("/**", &["api", "v1"]));
    assert!(under("/{x}/v1/*", &["api", "v1"]));
    assert!(under("/api/v1/x", &["api"]));
    assert!(under("/", &[]));
    assert!(!under("/internal/**", &["api"]));
    assert!(!under("/apix/**", &["api"]));
    assert!(!under("/api", &["api", "v1"]), "shorter than the prefix");
    assert!(!under("/", &["api"]));
}
