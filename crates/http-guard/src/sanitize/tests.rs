use http::{HeaderMap, HeaderName, HeaderValue};

use super::*;

fn headers(fields: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in fields {
        h.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    h
}

fn names(h: &HeaderMap) -> Vec<&str> {
    let mut n: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
    n.sort_unstable();
    n
}

#[test]
fn connection_options_are_removed_before_gateway_headers_are_added() {
    let mut h = headers(&[
        ("host", "app.example"),
        ("connection", "x-portcullis-identity, authorization"),
        ("authorization", "Bearer secret-token"),
        ("x-portcullis-identity", "spiffe://evil/forged"),
        ("accept", "*/*"),
    ]);
    let report = sanitize_request_headers(&mut h);
    assert_eq!(names(&h), ["accept", "host"]);
    let mut removed: Vec<&str> = report.removed().iter().map(|(n, _)| n.as_str()).collect();
    removed.sort_unstable();
    assert_eq!(
        removed,
        ["authorization", "connection", "x-portcullis-identity"]
    );
    for name in ["connection", "authorization", "x-portcullis-identity"] {
        assert!(report.was_removed(name), "{name}");
    }
    assert_eq!(
        reason_of(&report, "authorization"),
        Some(RemovalReason::ConnectionOption)
    );
    assert_eq!(
        reason_of(&report, "x-portcullis-identity"),
        Some(RemovalReason::ConnectionOption)
    );
    assert_eq!(
        reason_of(&report, "connection"),
        Some(RemovalReason::HopByHop)
    );

    // The gateway adds its header after sanitising: the client's
    // `Connection: x-portcullis-identity` has no effect on it any more.
    h.insert(
        "x-portcullis-identity",
        HeaderValue::from_static("spiffe://example.org/user"),
    );
    assert_eq!(h["x-portcullis-identity"], "spiffe://example.org/user");
}

fn reason_of(report: &SanitizeReport, name: &str) -> Option<RemovalReason> {
    report
        .removed()
        .iter()
        .find(|(n, _)| n.as_str() == name)
        .map(|(_, r)| *r)
}

#[test]
fn multiple_connection_headers_and_odd_spacing() {
    let mut h = headers(&[
        ("connection", "close"),
        ("connection", " X-Custom-A ,,\tx-custom-b , "),
        ("connection", "X_CUSTOM_C"),
        ("x-custom-a", "1"),
        ("x-custom-b", "2"),
        ("x-custom-c", "3"),
        ("x-custom-d", "4"),
    ]);
    let report = sanitize_request_headers(&mut h);
    assert_eq!(names(&h), ["x-custom-d"]);
    for name in ["x-custom-a", "x-custom-b", "x-custom-c"] {
        assert_eq!(
            reason_of(&report, name),
            Some(RemovalReason::ConnectionOption),
            "{name}"
        );
    }
}

#[test]
fn connection_cannot_remove_framing_or_routing_headers() {
    let mut h = headers(&[
        ("connection", "content-length, host, Content_Length"),
        ("content-length", "5"),
        ("host", "app.example"),
    ]);
    let report = sanitize_request_headers(&mut h);
    assert_eq!(names(&h), ["content-length", "host"]);
    assert_eq!(
        report.ignored_connection_options(),
        ["content-length", "host"]
    );
    assert_eq!(report.removed().len(), 1);
}

#[test]
fn standard_hop_by_hop_headers_are_removed() {
    let mut fields: Vec<(&str, &str)> = HOP_BY_HOP_HEADERS.iter().map(|n| (*n, "x")).collect();
    fields.push(("accept", "*/*"));
    let mut h = headers(&fields);
    let report = sanitize_request_headers(&mut h);
    assert_eq!(names(&h), ["accept"]);
    for name in HOP_BY_HOP_HEADERS {
        assert!(report.was_removed(name), "{name}");
    }
    // `te: trailers` (gRPC) is removed too; the gateway re-adds it.
    let mut grpc = headers(&[("te", "trailers"), ("content-type", "application/grpc")]);
    sanitize_request_headers(&mut grpc);
    assert_eq!(names(&grpc), ["content-type"]);
}

#[test]
fn underscore_variants_of_hop_by_hop_are_removed() {
    let mut h = headers(&[("transfer_encoding", "chunked"), ("proxy_connection", "x")]);
    let report = sanitize_request_headers(&mut h);
    assert!(h.is_empty());
    assert_eq!(
        reason_of(&report, "transfer_encoding"),
        Some(RemovalReason::HopByHop)
    );
}

#[test]
fn gateway_namespace_is_removed() {
    let mut h = headers(&[
        ("x-portcullis-identity", "forged"),
        ("x-portcullis-request-id", "forged"),
        ("X_Portcullis_Identity", "forged"),
        ("x_portcullis-user", "forged"),
        ("x-portcullis", "forged"),
        ("x-portcullisx", "kept"),
        ("x-portcull", "kept"),
    ]);
    let report = sanitize_request_headers(&mut h);
    assert_eq!(names(&h), ["x-portcull", "x-portcullisx"]);
    assert_eq!(
        reason_of(&report, "x_portcullis_identity"),
        Some(RemovalReason::GatewayNamespace)
    );
}

#[test]
fn identity_headers_are_removed_in_every_spelling() {
    let spellings = [
        "x-forwarded-user",
        "X-Forwarded-User",
        "X_Forwarded_User",
        "x-forwarded_user",
        "x-forwarded-email",
        "x-forwarded-groups",
        "x-forwarded-preferred-username",
        "x-forwarded-access-token",
        "x-auth-request-user",
        "x-auth-request-email",
        "x_auth_request_access_token",
        "x-client-cert",
        "x-client-cert-chain",
        "x-ssl-client-cert",
        "x-ssl-client-s-dn",
        "x-forwarded-client-cert",
        "x-real-ip",
        "forwarded",
        "x-forwarded-for",
        "x_forwarded_for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-original-uri",
        "x-original-url",
        "x-rewrite-url",
        "x-remote-user",
        "remote-user",
        "remote_user",
        "x-user",
        "x-email",
        "x-spiffe-id",
        "x-http-method-override",
        "x-pomerium-jwt-assertion",
        "x-pomerium-claim-email",
        "x-goog-authenticated-user-email",
        "x-amzn-oidc-identity",
        "cf-access-authenticated-user-email",
        "x-ms-client-principal-name",
        "X-WEBAUTH-USER",
        "x-webauth-groups",
        "X-ARR-ClientCert",
        "x-ssl-cert",
        "ssl-client-verify",
        "SSL-Client-S-DN",
        "x-client-verify",
        "x-remote-group",
        "x-remote-extra-scopes",
        "x-userinfo",
        "x-id-token",
        "x-access-token",
        "x-auth-user",
        "x-original-forwarded-for",
        "x-original-host",
        "client-ip",
        "x-envoy-external-address",
        "fastly-client-ip",
        "cf-connecting-ipv6",
        "x-proxyuser-ip",
        "x-forwarded-by",
        "x-host",
        "x-http-host-override",
    ];
    let fields: Vec<(&str, &str)> = spellings.iter().map(|n| (*n, "forged")).collect();
    let mut h = headers(&fields);
    h.append("accept", HeaderValue::from_static("*/*"));
    h.append("cookie", HeaderValue::from_static("a=b"));
    h.append("authorization", HeaderValue::from_static("Bearer t"));
    h.append("x-forwarded", HeaderValue::from_static("kept"));
    h.append("x-userid", HeaderValue::from_static("kept"));
    let report = sanitize_request_headers(&mut h);
    assert_eq!(
        names(&h),
        [
            "accept",
            "authorization",
            "cookie",
            "x-forwarded",
            "x-userid"
        ]
    );
    for name in spellings {
        assert!(report.was_removed(&name.to_ascii_lowercase()), "{name}");
        assert!(is_protected_header(name), "{name}");
    }
    assert!(report
        .removed()
        .iter()
        .all(|(_, r)| *r == RemovalReason::Identity));
}

#[test]
fn every_listed_name_is_protected_or_hop_by_hop() {
    for name in IDENTITY_HEADERS {
        assert!(is_protected_header(name), "{name}");
        assert!(is_protected_header(&name.to_ascii_uppercase()), "{name}");
        assert!(is_protected_header(&name.replace('-', "_")), "{name}");
        // Listed names are lowercase, valid header names.
        assert_eq!(
            HeaderName::from_bytes(name.as_bytes()).unwrap().as_str(),
            name
        );
    }
    for prefix in IDENTITY_HEADER_PREFIXES {
        assert!(is_protected_header(&format!("{prefix}x")), "{prefix}");
    }
    assert!(is_protected_header("x-portcullis-anything"));
    for name in [
        "accept",
        "authorization",
        "cookie",
        "host",
        "content-type",
        "user-agent",
        "x-request-id",
        "x-forwarded",
        "",
    ] {
        assert!(!is_protected_header(name), "{name}");
    }
}

#[test]
fn report_holds_names_never_values() {
    let mut h = headers(&[
        ("x-forwarded-user", "alice-secret-value"),
        ("connection", "authorization"),
        ("authorization", "Bearer topsecret"),
    ]);
    let report = sanitize_request_headers(&mut h);
    let debug = format!("{report:?}");
    assert!(!debug.contains("secret"), "{debug}");
    assert!(debug.contains("x-forwarded-user"));
    assert!(!report.is_empty());
}

#[test]
fn repeated_header_is_removed_once_with_all_values() {
    let mut h = headers(&[
        ("x-forwarded-for", "1.1.1.1"),
        ("x-forwarded-for", "2.2.2.2"),
    ]);
    let report = sanitize_request_headers(&mut h);
    assert!(h.is_empty());
    assert_eq!(report.removed().len(), 1);
}

#[test]
fn clean_request_is_untouched() {
    let mut h = headers(&[("host", "a.example"), ("accept", "*/*"), ("cookie", "a=b")]);
    let before = h.clone();
    let report = sanitize_request_headers(&mut h);
    assert!(report.is_empty());
    assert_eq!(h, before);
}

#[test]
fn response_sanitation_removes_hop_by_hop_and_the_gateway_namespace() {
    let mut h = headers(&[
        ("x-portcullis-identity", "set by the upstream"),
        ("connection", "x-upstream-secret, keep-alive"),
        ("keep-alive", "timeout=5"),
        ("x-upstream-secret", "1"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "h2c"),
        ("proxy-authenticate", "Basic"),
        ("content-type", "text/html"),
        ("x-forwarded-for", "kept in responses"),
        ("set-cookie", "a=b"),
    ]);
    let report = sanitize_response_headers(&mut h);
    assert_eq!(names(&h), ["content-type", "set-cookie", "x-forwarded-for"]);
    assert_eq!(
        reason_of(&report, "x-upstream-secret"),
        Some(RemovalReason::ConnectionOption)
    );
    assert_eq!(
        reason_of(&report, "keep-alive"),
        Some(RemovalReason::ConnectionOption)
    );
    assert_eq!(reason_of(&report, "upgrade"), Some(RemovalReason::HopByHop));
    assert_eq!(
        reason_of(&report, "x-portcullis-identity"),
        Some(RemovalReason::GatewayNamespace)
    );
}

#[test]
fn request_trailers_lose_what_request_headers_lose_and_fields_trailers_may_not_carry() {
    let mut t = headers(&[
        ("x-forwarded-user", "admin"),
        ("x-portcullis-identity", "forged"),
        ("x_portcullis_request_id", "forged"),
        ("x-forwarded-client-cert", "By=spiffe://example.org/admin"),
        ("authorization", "Bearer forged"),
        ("transfer-encoding", "chunked"),
        ("te", "trailers"),
        ("host", "other.example"),
        ("content-length", "5"),
        ("cookie", "s=1"),
        ("grpc-status", "0"),
        ("x-checksum", "abc"),
    ]);
    let report = sanitize_trailers(&mut t, true);
    assert_eq!(names(&t), ["grpc-status", "x-checksum"]);
    assert_eq!(
        reason_of(&report, "x-forwarded-user"),
        Some(RemovalReason::Identity)
    );
    assert_eq!(
        reason_of(&report, "x-portcullis-identity"),
        Some(RemovalReason::GatewayNamespace)
    );
    assert_eq!(reason_of(&report, "te"), Some(RemovalReason::HopByHop));
    assert_eq!(
        reason_of(&report, "authorization"),
        Some(RemovalReason::NotAllowedInTrailers)
    );
    assert_eq!(
        reason_of(&report, "host"),
        Some(RemovalReason::NotAllowedInTrailers)
    );
}

#[test]
fn response_trailers_keep_application_fields_only() {
    let mut t = headers(&[
        ("grpc-status", "0"),
        ("grpc-message", "ok"),
        ("x-forwarded-for", "kept in responses"),
        ("x-portcullis-identity", "set by the upstream"),
        ("set-cookie", "__Host-portcullis-session=evil"),
        ("connection", "close"),
        ("content-length", "1"),
    ]);
    sanitize_trailers(&mut t, false);
    assert_eq!(
        names(&t),
        ["grpc-message", "grpc-status", "x-forwarded-for"]
    );
}

#[test]
fn removal_reason_labels_are_distinct() {
    let labels = [
        RemovalReason::ConnectionOption.as_str(),
        RemovalReason::HopByHop.as_str(),
        RemovalReason::GatewayNamespace.as_str(),
        RemovalReason::Identity.as_str(),
        RemovalReason::NotAllowedInTrailers.as_str(),
    ];
    for (i, a) in labels.iter().enumerate() {
        assert!(!labels[i + 1..].contains(a), "{a}");
    }
}

#[test]
fn the_prefix_filter_holds_exactly_the_first_bytes_of_the_prefixes() {
    let mut expected: Vec<u8> = IDENTITY_HEADER_PREFIXES
        .iter()
        .filter_map(|p| p.bytes().next())
        .collect();
    expected.sort_unstable();
    expected.dedup();
    let held: Vec<u8> = (0..=u8::MAX)
        .filter(|b| PREFIX_FIRST_BYTES.contains(*b))
        .collect();
    assert_eq!(held, expected);
}

#[test]
fn names_near_the_lists_are_kept() {
    for name in [
        "x-forwarded-fo",
        "x-forwarded-forx",
        "x-portcullis",
        "x-portcullisx",
        "x-client-cer",
        "cf-acces",
        "x-remote",
        "x-ssl",
        "x-envoy",
        "x-original",
        "ssl-client",
        "x-sslx",
        "content-type",
        "cookie",
        "connection-x",
        "xte",
        "t",
    ] {
        let protected = name == "x-portcullis";
        assert_eq!(is_protected_header(name), protected, "{name}");
    }
    let mut h = headers(&[("te-x", "1"), ("x-upgrade", "1"), ("x_user_agent", "1")]);
    assert!(sanitize_request_headers(&mut h).is_empty());
}
