use super::*;
use crate::test_util::{friday_10z, ip, ts};

const FULL: &str = r#"{"principal": {"spiffe_id": "spiffe://example.org/ns/prod/sa/web", "subject": "CN=web", "issuer": "CN=Dev Intermediate CA", "subject_attrs": {"CN": "web"}},
 "route": "api", "method": "GET", "path": "/api/tenants/acme/x", "source_ip": "10.1.2.3", "time": "2026-12-04T10:00:00Z"}"#;

#[test]
fn parses_the_documented_json() {
    let input = RequestInput::from_json(FULL).unwrap();
    let req = input.to_request(None).unwrap();
    let cert = req.principal.cert.as_ref().unwrap();
    assert_eq!(
        cert.spiffe_id.as_ref().unwrap().as_str(),
        "spiffe://example.org/ns/prod/sa/web"
    );
    assert_eq!(cert.subject, "CN=web");
    assert_eq!(cert.issuer, "CN=Dev Intermediate CA");
    assert_eq!(
        cert.subject_attrs,
        vec![("CN".to_owned(), "web".to_owned())]
    );
    assert_eq!(cert.thumbprint, Thumbprint([0; 32]));
    assert_eq!(req.route, "api");
    assert_eq!(req.method, "GET");
    assert_eq!(req.path, "/api/tenants/acme/x");
    assert_eq!(req.source_ip, ip("10.1.2.3"));
    assert_eq!(req.now, friday_10z());
    let r = req.as_request();
    assert_eq!(r.path, "/api/tenants/acme/x");
}

#[test]
fn yaml_is_accepted_too() {
    let input = RequestInput::from_yaml(
        "principal: { cert_subject_is_not_a_field: 1 }\nroute: api\nmethod: GET\npath: /\nsource_ip: 10.0.0.1\n",
    );
    let err = input.unwrap_err();
    assert_eq!(err.path(), "principal.cert_subject_is_not_a_field");
    let input = RequestInput::from_yaml(
        "principal: { subject: CN=a }\nroute: api\nmethod: GET\npath: /\nsource_ip: \"2001:db8::1\"\n",
    )
    .unwrap();
    assert_eq!(input.source_ip, ip("2001:db8::1"));
}

#[test]
fn principal_null_or_absent_is_anonymous() {
    for src in [
        r#"{"principal": null, "route": "a", "method": "GET", "path": "/", "source_ip": "10.0.0.1"}"#,
        r#"{"route": "a", "method": "GET", "path": "/", "source_ip": "10.0.0.1"}"#,
    ] {
        let req = RequestInput::from_json(src)
            .unwrap()
            .to_request(Some(friday_10z()))
            .unwrap();
        assert!(req.principal.is_anonymous());
    }
}

#[test]
fn time_needs_a_default_when_absent() {
    let input = RequestInput::from_json(
        r#"{"route": "a", "method": "GET", "path": "/", "source_ip": "10.0.0.1"}"#,
    )
    .unwrap();
    let err = input.to_request(None).unwrap_err();
    assert_eq!(err.to_string(), "time: missing; give the request a `time`");
    let now = ts("2027-01-01T00:00:00Z");
    assert_eq!(input.to_request(Some(now)).unwrap().now, now);
    let (principal, fields) = input.to_parts(now).unwrap();
    assert!(principal.is_anonymous());
    assert_eq!(fields.request(&principal).now, now);
    // An explicit time wins over the default.
    let input = RequestInput::from_json(FULL).unwrap();
    assert_eq!(input.to_request(Some(now)).unwrap().now, friday_10z());
}

#[test]
fn bad_values_name_their_key_path() {
    let bad_ip = r#"{"route": "a", "method": "GET", "path": "/", "source_ip": "10.0.0.300"}"#;
    let err = RequestInput::from_json(bad_ip).unwrap_err();
    assert_eq!(err.path(), "source_ip");
    let bad_time = r#"{"route": "a", "method": "GET", "path": "/", "source_ip": "10.0.0.1", "time": "yesterday"}"#;
    assert_eq!(
        RequestInput::from_json(bad_time).unwrap_err().path(),
        "time"
    );
    let unknown =
        r#"{"route": "a", "method": "GET", "path": "/", "source_ip": "10.0.0.1", "user": "x"}"#;
    assert_eq!(RequestInput::from_json(unknown).unwrap_err().path(), "user");
    let missing = r#"{"route": "a", "method": "GET", "path": "/"}"#;
    assert!(RequestInput::from_json(missing)
        .unwrap_err()
        .to_string()
        .contains("missing field `source_ip`"));
    let trailing = r#"{"route": "a", "method": "GET", "path": "/", "source_ip": "10.0.0.1"} x"#;
    assert!(RequestInput::from_json(trailing).is_err());
}

#[test]
fn bad_spiffe_id_and_thumbprint_are_rejected() {
    let input = RequestInput::from_json(
        r#"{"principal": {"spiffe_id": "spiffe://Example.org/x"}, "route": "a", "method": "GET", "path": "/", "source_ip": "10.0.0.1"}"#,
    )
    .unwrap();
    let err = input.to_request(Some(friday_10z())).unwrap_err();
    assert_eq!(err.path(), "principal.spiffe_id");
    assert!(err
        .to_string()
        .starts_with("principal.spiffe_id: invalid spiffe id `spiffe://Example.org/x`"));

    let hex = "ab".repeat(32);
    let input = RequestInput::from_json(&format!(
        r#"{{"principal": {{"thumbprint": "{hex}"}}, "route": "a", "method": "GET", "path": "/", "source_ip": "10.0.0.1"}}"#
    ))
    .unwrap();
    let req = input.to_request(Some(friday_10z())).unwrap();
    assert_eq!(
        req.principal.cert.unwrap().thumbprint,
        Thumbprint([0xab; 32])
    );

    let input = RequestInput::from_json(
        r#"{"principal": {"thumbprint": "xyz"}, "route": "a", "method": "GET", "path": "/", "source_ip": "10.0.0.1"}"#,
    )
    .unwrap();
    let err = input.to_request(Some(friday_10z())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "principal.thumbprint: expected 64 hex digits"
    );
}

#[test]
fn oversized_input_is_rejected() {
    let big = format!("{{\"route\": \"{}\"}}", "a".repeat(MAX_INPUT_BYTES));
    let err = RequestInput::from_json(&big).unwrap_err();
    assert!(matches!(err.kind(), PolicyErrorKind::TooLarge { .. }));
    assert!(RequestInput::from_yaml(&big).is_err());
}

#[test]
fn round_trips_through_json() {
    let input = RequestInput::from_json(FULL).unwrap();
    let json = serde_json::to_string(&input).unwrap();
    assert_eq!(RequestInput::from_json(&json).unwrap(), input);
}

#[test]
fn a_path_the_gateway_would_spell_otherwise_or_refuse_is_an_error() {
    let with_path = |path: &str| {
        RequestInput::from_json(&FULL.replace("/api/tenants/acme/x", path))
            .unwrap()
            .to_request(None)
    };
    for (path, normal) in [("/api/café/x", "caf%C3%A9"), ("/api/%7Eadmin", "~admin")] {
        let e = with_path(path).unwrap_err();
        assert_eq!(e.path(), "path");
        assert!(e.to_string().contains(&format!("`{normal}`")), "{e}");
    }
    for path in ["/api/a%2Fb", "/api/a;b", "/api/%zz"] {
        let e = with_path(path).unwrap_err();
        assert!(e.to_string().contains("the gateway refuses it"), "{e}");
    }
    for path in ["/api/caf%C3%A9/x", "/api/~admin", "/", "/api/"] {
        assert!(with_path(path).is_ok(), "{path}");
    }
}
