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
        segs("/API/a%2Fb/v1.2"),
        [
            Segment::Literal("API".into()),
            Segment::Literal("a%2Fb".into()),
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
