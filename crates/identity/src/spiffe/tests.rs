use super::*;

#[test]
fn accepts_valid_ids() {
    for s in [
        "spiffe://example.org",
        "spiffe://example.org/ns/prod/sa/web",
        "spiffe://a-b_c.d0/X.y-z_9",
        "spiffe://td/..a/a..",
    ] {
        let id = SpiffeId::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(id.as_str(), s);
    }
    let id = SpiffeId::parse("spiffe://example.org/ns/prod/sa/web").unwrap();
    assert_eq!(id.trust_domain(), "example.org");
    assert_eq!(id.path(), "/ns/prod/sa/web");
    assert_eq!(
        id.segments().collect::<Vec<_>>(),
        ["ns", "prod", "sa", "web"]
    );
    let td = SpiffeId::parse("spiffe://example.org").unwrap();
    assert_eq!(td.path(), "");
    assert_eq!(td.segments().count(), 0);
}

#[test]
fn rejects_invalid_ids() {
    let cases: &[(&str, SpiffeIdError)] = &[
        ("", SpiffeIdError::Empty),
        ("SPIFFE://example.org", SpiffeIdError::WrongScheme),
        ("https://example.org/a", SpiffeIdError::WrongScheme),
        ("spiffe:/example.org", SpiffeIdError::WrongScheme),
        ("spiffe://", SpiffeIdError::MissingTrustDomain),
        ("spiffe:///path", SpiffeIdError::MissingTrustDomain),
        ("spiffe://Example.org", SpiffeIdError::BadTrustDomainChar),
        ("spiffe://exa mple.org", SpiffeIdError::BadTrustDomainChar),
        (
            "spiffe://example.org:8080/a",
            SpiffeIdError::ForbiddenUriPart,
        ),
        (
            "spiffe://user@example.org/a",
            SpiffeIdError::ForbiddenUriPart,
        ),
        ("spiffe://example.org/", SpiffeIdError::EmptySegment),
        ("spiffe://example.org/a/", SpiffeIdError::EmptySegment),
        ("spiffe://example.org//a", SpiffeIdError::EmptySegment),
        ("spiffe://example.org/a/./b", SpiffeIdError::DotSegment),
        ("spiffe://example.org/a/../b", SpiffeIdError::DotSegment),
        ("spiffe://example.org/a%2Fb", SpiffeIdError::BadPathChar),
        (
            "spiffe://example.org/a?x=1",
            SpiffeIdError::ForbiddenUriPart,
        ),
        ("spiffe://example.org/a#f", SpiffeIdError::ForbiddenUriPart),
        ("spiffe://example.org/é", SpiffeIdError::BadPathChar),
    ];
    for (s, want) in cases {
        assert_eq!(SpiffeId::parse(s).unwrap_err(), *want, "{s}");
    }
    let long = format!("spiffe://td/{}", "a".repeat(MAX_SPIFFE_ID_LEN));
    assert_eq!(SpiffeId::parse(&long).unwrap_err(), SpiffeIdError::TooLong);
    let long_td = format!("spiffe://{}", "a".repeat(256));
    assert_eq!(
        SpiffeId::parse(&long_td).unwrap_err(),
        SpiffeIdError::TrustDomainTooLong
    );
}

#[test]
fn prefix_is_segment_aligned() {
    let id = SpiffeId::parse("spiffe://td/ns/prod/sa/web").unwrap();
    let p = |s| SpiffeId::parse(s).unwrap();
    assert!(id.has_prefix(&p("spiffe://td")));
    assert!(id.has_prefix(&p("spiffe://td/ns/prod")));
    assert!(id.has_prefix(&p("spiffe://td/ns/prod/sa/web")));
    assert!(!id.has_prefix(&p("spiffe://td/ns/pro")));
    assert!(!id.has_prefix(&p("spiffe://t")));
    assert!(!id.has_prefix(&p("spiffe://td/ns/prod/sa/web/x")));
}

proptest::proptest! {
    #[test]
    fn parse_never_panics_and_roundtrips(s in "\\PC{0,80}") {
        if let Ok(id) = SpiffeId::parse(&s) {
            proptest::prop_assert_eq!(id.as_str(), s.as_str());
            proptest::prop_assert!(id.as_str().starts_with("spiffe://"));
        }
    }
}
