use http::header::HOST;
use http::{HeaderMap, HeaderValue, Uri, Version};

use super::*;

fn hosts(values: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        h.append(HOST, HeaderValue::from_str(v).unwrap());
    }
    h
}

fn uri(s: &str) -> Uri {
    s.parse().unwrap()
}

fn host_of(target: &str, host_headers: &[&str], version: Version) -> Result<String, TargetError> {
    effective_host(&uri(target), &hosts(host_headers), version)
}

#[test]
fn origin_form_takes_the_single_host_header() {
    let cases: &[(&str, &str)] = &[
        ("example.com", "example.com"),
        ("Example.COM", "example.com"),
        ("example.com:8443", "example.com"),
        ("example.com.", "example.com"),
        ("example.com.:443", "example.com"),
        ("a-b.c_d.example", "a-b.c_d.example"),
        ("localhost", "localhost"),
        ("10.0.0.1", "10.0.0.1"),
        ("10.0.0.1:80", "10.0.0.1"),
        ("[::1]", "[::1]"),
        ("[::1]:8080", "[::1]"),
        ("[2001:DB8:0:0:0:0:0:1]", "[2001:db8::1]"),
        ("example.com:65535", "example.com"),
        ("example.com:0", "example.com"),
    ];
    for (host, want) in cases {
        for version in [Version::HTTP_11, Version::HTTP_10] {
            assert_eq!(
                host_of("/x", &[host], version).as_deref(),
                Ok(*want),
                "host {host:?} {version:?}"
            );
        }
    }
}

#[test]
fn origin_form_without_single_host_is_refused() {
    for version in [Version::HTTP_11, Version::HTTP_10, Version::HTTP_2] {
        assert_eq!(host_of("/x", &[], version), Err(TargetError::MissingHost));
        assert_eq!(
            host_of("/x", &["a.example", "a.example"], version),
            Err(TargetError::DuplicateHost)
        );
        assert_eq!(
            host_of("/x", &["a.example", "b.example"], version),
            Err(TargetError::DuplicateHost)
        );
    }
}

#[test]
fn bad_host_syntax_is_refused() {
    let bad = [
        "",
        " ",
        "example.com ",
        "exa mple.com",
        "a.example,b.example",
        "user@example.com",
        "user:pw@example.com",
        "example.com:",
        "example.com:99999",
        "example.com:65536",
        "example.com:+80",
        "example.com:80:80",
        "example.com:http",
        "example..com",
        ".example.com",
        "example.com..",
        "ex%41mple.com",
        "exa/mple.com",
        "exa\\mple.com",
        "[::1",
        "[::1]x",
        "[::1]:",
        "[fe80::1%25eth0]",
        "[v1.fe80::a+en1]",
        "[example.com]",
        "::1",
        "127.1",
        "0x7f.0.0.1",
        "0177.0.0.1",
        "127.0.0.01",
        "2130706433",
        "1.2.3.4.5",
        "256.0.0.1",
        "example.0x10",
        "*.example.com",
        "exämple.com",
    ];
    for host in bad {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_bytes(host.as_bytes()).unwrap());
        let got = effective_host(&uri("/"), &h, Version::HTTP_11);
        assert!(
            matches!(got, Err(TargetError::BadHost { .. })),
            "host {host:?} gave {got:?}"
        );
    }
}

#[test]
fn non_ascii_host_header_value_is_refused() {
    let mut h = HeaderMap::new();
    h.insert(HOST, HeaderValue::from_bytes(b"ex\xE4mple.com").unwrap());
    assert_eq!(
        effective_host(&uri("/"), &h, Version::HTTP_11)
            .unwrap_err()
            .reason_code(),
        "bad_host"
    );
}

#[test]
fn long_names_and_labels() {
    let label63 = "a".repeat(63);
    let label64 = "a".repeat(64);
    assert!(host_of("/", &[&format!("{label63}.example")], Version::HTTP_11).is_ok());
    assert!(host_of("/", &[&format!("{label64}.example")], Version::HTTP_11).is_err());
    let name253 = format!("{0}.{0}.{0}.{1}", label63, "a".repeat(61));
    assert_eq!(name253.len(), MAX_HOST_LEN);
    assert!(host_of("/", &[&name253], Version::HTTP_11).is_ok());
    assert!(host_of("/", &[&format!("{name253}.")], Version::HTTP_11).is_ok());
    assert!(host_of("/", &[&format!("a{name253}")], Version::HTTP_11).is_err());
}

#[test]
fn absolute_form_must_agree_with_host() {
    let ok: &[(&str, &str, &str)] = &[
        ("http://example.com/x", "example.com", "example.com"),
        ("http://EXAMPLE.com/x", "example.COM", "example.com"),
        ("https://example.com/x", "example.com", "example.com"),
        ("http://example.com:80/x", "example.com", "example.com"),
        ("http://example.com/x", "example.com:80", "example.com"),
        ("https://example.com:443/x", "example.com", "example.com"),
        (
            "http://example.com:8080/x",
            "example.com:8080",
            "example.com",
        ),
        ("http://example.com./x", "example.com", "example.com"),
        ("http://[::1]:8080/x", "[0:0::1]:8080", "[::1]"),
    ];
    for (target, host, want) in ok {
        assert_eq!(
            host_of(target, &[host], Version::HTTP_11).as_deref(),
            Ok(*want),
            "{target} / {host}"
        );
    }
    let mismatched: &[(&str, &str)] = &[
        ("http://example.com/x", "evil.example"),
        ("http://example.com/x", "example.com:8080"),
        ("http://example.com:8080/x", "example.com"),
        ("https://example.com:80/x", "example.com"),
        ("http://example.com:443/x", "example.com"),
        ("http://admin.internal/x", "example.com"),
    ];
    for (target, host) in mismatched {
        assert_eq!(
            host_of(target, &[host], Version::HTTP_11),
            Err(TargetError::HostMismatch),
            "{target} / {host}"
        );
    }
}

#[test]
fn absolute_form_refusals() {
    assert_eq!(
        host_of("http://example.com/x", &[], Version::HTTP_11),
        Err(TargetError::MissingHost)
    );
    assert_eq!(
        host_of(
            "http://example.com/x",
            &["example.com", "example.com"],
            Version::HTTP_11
        ),
        Err(TargetError::DuplicateHost)
    );
    for target in [
        "ftp://example.com/x",
        "ws://example.com/x",
        "file://example.com/x",
    ] {
        assert_eq!(
            host_of(target, &["example.com"], Version::HTTP_11),
            Err(TargetError::BadScheme),
            "{target}"
        );
    }
    let userinfo = host_of(
        "http://user@example.com/x",
        &["example.com"],
        Version::HTTP_11,
    );
    assert!(
        matches!(userinfo, Err(TargetError::BadHost { .. })),
        "{userinfo:?}"
    );
}

#[test]
fn authority_and_asterisk_forms_are_refused() {
    for version in [Version::HTTP_11, Version::HTTP_2] {
        assert_eq!(
            host_of("example.com:443", &["example.com:443"], version),
            Err(TargetError::AuthorityForm)
        );
        assert_eq!(
            host_of("*", &["example.com"], version),
            Err(TargetError::AsteriskForm)
        );
    }
    // HTTP/2 `OPTIONS *` arrives with scheme and authority.
    let h2_asterisk = Uri::builder()
        .scheme("https")
        .authority("example.com")
        .path_and_query("*")
        .build()
        .unwrap();
    assert_eq!(h2_asterisk.path(), "*");
    assert_eq!(
        effective_host(&h2_asterisk, &HeaderMap::new(), Version::HTTP_2),
        Err(TargetError::AsteriskForm)
    );
}

#[test]
fn http2_uses_authority_and_checks_host() {
    let v = Version::HTTP_2;
    assert_eq!(
        host_of("https://example.com/x", &[], v).as_deref(),
        Ok("example.com")
    );
    assert_eq!(
        host_of("https://Example.com:443/x", &["example.com"], v).as_deref(),
        Ok("example.com")
    );
    assert_eq!(
        host_of("https://example.com/x", &["evil.example"], v),
        Err(TargetError::HostMismatch)
    );
    assert_eq!(
        host_of("https://example.com/x", &["example.com", "example.com"], v),
        Err(TargetError::DuplicateHost)
    );
    // Without `:authority`, Host is required.
    assert_eq!(
        host_of("/x", &["example.com"], v).as_deref(),
        Ok("example.com")
    );
    assert_eq!(
        host_of("https://example.com/x", &[], Version::HTTP_3).as_deref(),
        Ok("example.com")
    );
}

#[test]
fn http09_is_refused() {
    assert_eq!(
        host_of("/", &["example.com"], Version::HTTP_09),
        Err(TargetError::UnsupportedVersion)
    );
    assert_eq!(
        TargetError::UnsupportedVersion.status(),
        StatusCode::HTTP_VERSION_NOT_SUPPORTED
    );
}

#[test]
fn reason_codes_and_messages() {
    let errors = [
        TargetError::UnsupportedVersion,
        TargetError::MissingHost,
        TargetError::DuplicateHost,
        TargetError::HostMismatch,
        TargetError::AuthorityForm,
        TargetError::AsteriskForm,
        TargetError::BadScheme,
        TargetError::Malformed,
        TargetError::BadHost { reason: "empty" },
    ];
    let mut codes: Vec<_> = errors.iter().map(TargetError::reason_code).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), errors.len(), "reason codes must be distinct");
    for e in errors {
        let msg = e.to_string();
        assert!(
            !msg.ends_with('.') && msg.starts_with(|c: char| c.is_lowercase()),
            "{msg}"
        );
    }
}

#[test]
fn sni_matching() {
    let matching: &[(&str, Option<&str>)] = &[
        ("example.com", Some("example.com")),
        ("example.com", Some("EXAMPLE.com")),
        ("example.com", Some("example.com.")),
        ("example.com.", Some("example.com")),
        ("10.0.0.1", None),
        ("[::1]", None),
        ("[2001:db8::1]", None),
        ("::1", None),
    ];
    for (host, sni) in matching {
        assert!(host_matches_sni(host, *sni), "{host:?} {sni:?}");
    }
    let mismatching: &[(&str, Option<&str>)] = &[
        ("example.com", None),
        ("example.com", Some("other.example")),
        ("example.com", Some("sub.example.com")),
        ("sub.example.com", Some("example.com")),
        ("example.com", Some("")),
        ("example.com", Some(".")),
        ("", Some("")),
        ("example.com:443", Some("example.com")),
        ("10.0.0.1", Some("example.com")),
        ("[not-ip]", None),
        ("127.1", None),
        ("example.com", Some("example.com..")),
    ];
    for (host, sni) in mismatching {
        assert!(!host_matches_sni(host, *sni), "{host:?} {sni:?}");
    }
}

#[test]
fn effective_host_output_satisfies_sni_check() {
    let host = host_of("/", &["Example.COM.:443"], Version::HTTP_11).unwrap();
    assert!(host_matches_sni(&host, Some("example.com")));
    let ip = host_of("/", &["[::1]:443"], Version::HTTP_11).unwrap();
    assert!(host_matches_sni(&ip, None));
}
