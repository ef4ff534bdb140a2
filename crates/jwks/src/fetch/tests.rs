use http::Uri;

use super::*;

fn uri(s: &str) -> Uri {
    s.parse().unwrap()
}

#[test]
fn https_url_is_accepted() {
    assert_eq!(check_https(&uri("https://idp.example/jwks")), Ok(()));
    assert_eq!(check_https(&uri("HTTPS://idp.example:8443/k")), Ok(()));
}

#[test]
fn http_url_is_insecure() {
    assert_eq!(
        check_https(&uri("http://idp.example/jwks")),
        Err(UrlProblem::Insecure)
    );
}

#[test]
fn other_schemes_and_relative_urls_are_refused() {
    assert_eq!(
        check_https(&uri("ftp://idp.example/jwks")),
        Err(UrlProblem::NotHttps)
    );
    assert_eq!(check_https(&uri("/jwks")), Err(UrlProblem::NotAbsolute));
}

#[test]
fn credentials_in_url_are_refused() {
    assert_eq!(
        check_https(&uri("https://user:secret@idp.example/jwks")),
        Err(UrlProblem::Credentials)
    );
}

#[test]
fn redacted_hides_query_and_credentials() {
    let shown = Redacted(&uri("https://idp.example/jwks?api_key=secret")).to_string();
    assert_eq!(shown, "https://idp.example/jwks?[redacted]");
    let shown = Redacted(&uri("https://u:pw@idp.example/k")).to_string();
    assert_eq!(shown, "https://idp.example/k");
}

#[test]
fn discovery_url_appends_well_known_path() {
    assert_eq!(
        discovery_uri("https://idp.example").unwrap(),
        "https://idp.example/.well-known/openid-configuration"
    );
    assert_eq!(
        discovery_uri("https://idp.example/realms/main/").unwrap(),
        "https://idp.example/realms/main/.well-known/openid-configuration"
    );
}

#[test]
fn discovery_refuses_http_issuer() {
    assert!(matches!(
        discovery_uri("http://idp.example"),
        Err(StartError::InsecureUrl { .. })
    ));
}

#[test]
fn discovery_refuses_issuer_with_query_or_fragment() {
    for issuer in [
        "https://idp.example/?tenant=a",
        "https://idp.example/#x",
        "idp.example",
    ] {
        assert!(
            matches!(discovery_uri(issuer), Err(StartError::InvalidUrl { .. })),
            "{issuer}"
        );
    }
}

#[test]
fn discovery_document_gives_jwks_uri() {
    let doc = br#"{"issuer":"https://idp.example","jwks_uri":"https://keys.idp.example/jwks","other":[1,2]}"#;
    assert_eq!(
        parse_discovery(doc, "https://idp.example").unwrap(),
        "https://keys.idp.example/jwks"
    );
}

#[test]
fn discovery_issuer_must_match_exactly() {
    let doc = br#"{"issuer":"https://idp.example/","jwks_uri":"https://idp.example/jwks"}"#;
    let err = parse_discovery(doc, "https://idp.example").unwrap_err();
    assert!(err.contains("does not match"), "{err}");
}

#[test]
fn discovery_http_jwks_uri_is_refused() {
    let doc = br#"{"issuer":"https://idp.example","jwks_uri":"http://idp.example/jwks"}"#;
    let err = parse_discovery(doc, "https://idp.example").unwrap_err();
    assert!(err.contains("http is not allowed"), "{err}");
}

#[test]
fn discovery_without_jwks_uri_or_not_json_is_refused() {
    for doc in [
        &br#"{"issuer":"https://idp.example"}"#[..],
        br#"{"issuer":"https://idp.example","jwks_uri":5}"#,
        b"<html>",
        b"[]",
    ] {
        assert!(parse_discovery(doc, "https://idp.example").is_err());
    }
}

#[test]
fn untrusted_issuer_is_escaped_and_truncated_in_errors() {
    let long = format!("https://evil\n{}", "a".repeat(500));
    let doc = serde_json::json!({"issuer": long, "jwks_uri": "https://x/jwks"}).to_string();
    let err = parse_discovery(doc.as_bytes(), "https://idp.example").unwrap_err();
    assert!(!err.contains('\n'));
    assert!(err.contains("\\n"));
    assert!(err.len() < 400, "{}", err.len());
}

#[test]
fn empty_ca_bundle_is_refused() {
    let settings = FetchSettings {
        roots: Some(Vec::new()),
        ..FetchSettings::default()
    };
    assert!(matches!(
        build_client(&settings),
        Err(StartError::EmptyCaBundle)
    ));
}

#[test]
fn garbage_ca_certificate_is_refused() {
    let settings = FetchSettings {
        roots: Some(vec![CertificateDer::from(vec![
            0x30, 0x03, 0x01, 0x02, 0x03,
        ])]),
        ..FetchSettings::default()
    };
    assert!(matches!(
        build_client(&settings),
        Err(StartError::BadCaCertificate { index: 0, .. })
    ));
}

#[tokio::test]
async fn key_file_over_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, vec![b' '; 101]).unwrap();
    assert!(matches!(
        read_file(&path, 100).await,
        Err(FetchError::FileTooLarge { limit: 100, .. })
    ));
    assert_eq!(read_file(&path, 101).await.unwrap().len(), 101);
}

#[tokio::test]
async fn missing_key_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.json");
    assert!(matches!(
        file_stamp(&path).await,
        Err(FetchError::File { .. })
    ));
}
