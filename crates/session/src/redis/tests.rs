use std::io;
use std::time::Duration;

use ::redis::{make_extension_error, ErrorKind, RedisError, ServerErrorKind};
use rustls_pki_types::CertificateDer;
use zeroize::Zeroizing;

use super::link::{breaks_connection, map_error};
use super::record::{decode, decode_fields, hex, subject_hash};
use super::{client, filter_fields, pem, RedisOptions};
use crate::{Session, SessionFilter, SessionKey, StoreError};

fn refused(options: &RedisOptions) -> &'static str {
    match client(options) {
        Err(StoreError::Invalid(why)) => why,
        other => panic!("expected a refusal, got {:?}", other.map(|(_, e)| e)),
    }
}

#[test]
fn accepts_plain_and_tls_urls() {
    let (_, endpoint) = client(&RedisOptions::new("redis://127.0.0.1:6380/2")).unwrap();
    assert_eq!(endpoint, "redis://127.0.0.1:6380");
    let (_, endpoint) = client(&RedisOptions::new("rediss://cache.internal:6380")).unwrap();
    assert_eq!(endpoint, "rediss://cache.internal:6380");
}

#[test]
fn refuses_other_schemes() {
    for url in [
        "http://127.0.0.1:6379",
        "unix:///run/redis.sock",
        "redis+unix:///run/redis.sock",
        "valkey://127.0.0.1",
        "REDIS://127.0.0.1",
        "",
        "127.0.0.1:6379",
    ] {
        assert!(
            refused(&RedisOptions::new(url)).contains("must start with"),
            "{url}"
        );
    }
}

#[test]
fn refuses_credentials_in_the_url() {
    for url in [
        "redis://:hunter2@127.0.0.1:6379",
        "redis://gw:hunter2@127.0.0.1:6379",
        "rediss://gw@cache:6380",
    ] {
        let why = refused(&RedisOptions::new(url));
        assert!(why.contains("credentials"), "{url}");
        assert!(!why.contains("hunter2"));
    }
}

#[test]
fn refuses_insecure_tls_and_queries() {
    // `#insecure` would accept any server certificate.
    assert!(refused(&RedisOptions::new("rediss://cache:6380/#insecure")).contains("fragment"));
    assert!(refused(&RedisOptions::new("rediss://cache:6380#insecure")).contains("fragment"));
    assert!(refused(&RedisOptions::new("redis://cache:6379/?protocol=resp3")).contains("query"));
}

#[test]
fn refuses_tls_roots_without_tls() {
    let mut o = RedisOptions::new("redis://127.0.0.1:6379");
    o.tls_roots = Some(vec![CertificateDer::from(vec![0x30, 0x00])]);
    assert!(refused(&o).contains("rediss://"));
    let mut o = RedisOptions::new("rediss://127.0.0.1:6379");
    o.tls_roots = Some(Vec::new());
    assert!(refused(&o).contains("empty"));
}

#[test]
fn refuses_zero_timeouts() {
    let mut o = RedisOptions::new("redis://127.0.0.1:6379");
    o.op_timeout = Duration::ZERO;
    assert!(refused(&o).contains("timeouts"));
    let mut o = RedisOptions::new("redis://127.0.0.1:6379");
    o.connect_timeout = Duration::ZERO;
    assert!(refused(&o).contains("timeouts"));
}

#[test]
fn refuses_bad_prefixes() {
    let long = "p".repeat(super::MAX_REDIS_KEY_PREFIX_LEN + 1);
    for prefix in ["", "with space:", "tab\t", "new\nline", "é:", long.as_str()] {
        let mut o = RedisOptions::new("redis://127.0.0.1:6379");
        o.key_prefix = prefix.into();
        assert!(refused(&o).contains("prefix"), "{prefix:?}");
    }
    let mut o = RedisOptions::new("redis://127.0.0.1:6379");
    o.key_prefix = "p".repeat(super::MAX_REDIS_KEY_PREFIX_LEN);
    assert!(client(&o).is_ok());
}

#[test]
fn debug_redacts_the_password() {
    let mut o = RedisOptions::new("redis://127.0.0.1:6379");
    o.username = Some("gw".into());
    o.password = Some(Zeroizing::new("hunter2-secret".into()));
    let text = format!("{o:?}");
    assert!(!text.contains("hunter2-secret"));
    assert!(text.contains("<redacted>"));
    assert!(text.contains("gw"));
}

#[test]
fn debug_redacts_credentials_in_the_url() {
    let o = RedisOptions::new("redis://gw:hunter2@cache:6379/0");
    let text = format!("{o:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("redis://<redacted>@cache:6379/0"), "{text}");
    let o = RedisOptions::new("gw:hunter2@cache");
    assert!(!format!("{o:?}").contains("hunter2"));
    let o = RedisOptions::new("rediss://cache:6380");
    assert!(format!("{o:?}").contains("rediss://cache:6380"));
}

#[test]
fn pem_wraps_at_64_columns() {
    let der = CertificateDer::from((0u8..=200).collect::<Vec<u8>>());
    let text = String::from_utf8(pem(&[der.clone(), der])).unwrap();
    assert_eq!(text.matches("-----BEGIN CERTIFICATE-----").count(), 2);
    assert!(text
        .lines()
        .all(|l| l.len() <= 64 || l.starts_with("-----")));
    let parsed: Vec<_> = rustls_pki_types::pem::PemObject::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<CertificateDer<'_>>, _>>()
        .unwrap();
    assert_eq!(parsed.len(), 2);
    assert_eq!(
        parsed[0].as_ref(),
        (0u8..=200).collect::<Vec<u8>>().as_slice()
    );
}

#[test]
fn empty_filter_fields_are_absent() {
    assert_eq!(
        filter_fields(&SessionFilter::default()),
        (String::new(), String::new())
    );
    let f = SessionFilter {
        subject: Some(String::new()),
        thumbprint: None,
    };
    assert_eq!(filter_fields(&f), (String::new(), String::new()));
    let f = SessionFilter {
        subject: Some("alice".into()),
        thumbprint: Some([0xab; 32]),
    };
    let (s, t) = filter_fields(&f);
    assert_eq!(s, subject_hash("alice"));
    assert_eq!(s.len(), 64);
    assert_eq!(t, "ab".repeat(32));
}

#[test]
fn subject_hash_separates_subjects() {
    assert_ne!(subject_hash("alice"), subject_hash("alic"));
    assert_ne!(subject_hash("alice"), subject_hash("Alice"));
    // SHA-256 of the empty string.
    assert_eq!(
        subject_hash(""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(hex(&[0x00, 0x0f, 0xf0, 0xff]), "000ff0ff");
}

fn sample() -> Session {
    Session {
        key: SessionKey([0x11; 32]),
        issuer: "https://idp.example.com".into(),
        subject: "alice".into(),
        claims: serde_json::Map::new(),
        amr: Vec::new(),
        acr: None,
        auth_time: 1,
        mfa_time: None,
        bound_thumbprint: None,
        refresh_token: None,
        provider_token_expires_at: None,
        created_at: 1,
        last_seen: 1,
        expires_at: 10,
        idle_secs: 5,
        revoked: false,
        version: 1,
    }
}

#[test]
fn decode_takes_version_and_revocation_from_the_fields() {
    let s = sample();
    let json = serde_json::to_vec(&s).unwrap();
    let got = decode(&json, b"7", Some(b"1"), Some(&s.key)).unwrap();
    assert_eq!(got.version, 7);
    assert!(got.revoked);
    let got = decode(&json, b"1", Some(b"0"), Some(&s.key)).unwrap();
    assert_eq!(got, s);
    // A record whose JSON says revoked stays revoked.
    let mut r = s.clone();
    r.revoked = true;
    let json_r = serde_json::to_vec(&r).unwrap();
    assert!(decode(&json_r, b"1", Some(b"0"), None).unwrap().revoked);
}

#[test]
fn decode_refuses_damaged_records() {
    let s = sample();
    let json = serde_json::to_vec(&s).unwrap();
    let corrupt = |r: Result<Session, StoreError>| matches!(r, Err(StoreError::Corrupt(_)));
    assert!(corrupt(decode(b"{", b"1", Some(b"0"), None)));
    assert!(corrupt(decode(b"{\"key\":\"zz\"}", b"1", Some(b"0"), None)));
    assert!(corrupt(decode(&json, b"-1", Some(b"0"), None)));
    assert!(corrupt(decode(&json, b"one", Some(b"0"), None)));
    assert!(corrupt(decode(
        &json,
        b"18446744073709551616",
        Some(b"0"),
        None
    )));
    assert!(corrupt(decode(&json, b"1", Some(b"2"), None)));
    assert!(corrupt(decode(&json, b"1", None, None)));
    assert!(corrupt(decode(
        &json,
        b"1",
        Some(b"0"),
        Some(&SessionKey([0x22; 32]))
    )));
    let big = vec![b' '; super::MAX_REDIS_RECORD_BYTES + 1];
    assert!(corrupt(decode(&big, b"1", Some(b"0"), None)));
}

#[test]
fn decode_errors_do_not_quote_the_record() {
    let err = decode(b"{\"issuer\": \"secret-value\" ", b"1", Some(b"0"), None).unwrap_err();
    assert!(!err.to_string().contains("secret-value"), "{err}");
    let err = decode(b"{\"key\": \"secret-value\"}", b"1", Some(b"0"), None).unwrap_err();
    assert!(!err.to_string().contains("secret-value"), "{err}");
}

#[test]
fn decode_fields_tells_missing_from_partial() {
    let s = sample();
    let json = serde_json::to_vec(&s).unwrap();
    assert_eq!(decode_fields(&[None, None, None], None).unwrap(), None);
    assert_eq!(
        decode_fields(
            &[Some(json.clone()), Some(b"1".to_vec()), Some(b"0".to_vec())],
            None
        )
        .unwrap(),
        Some(s)
    );
    for partial in [
        vec![Some(json.clone()), None, Some(b"0".to_vec())],
        vec![None, Some(b"1".to_vec()), Some(b"0".to_vec())],
        vec![Some(json.clone()), Some(b"1".to_vec())],
        vec![],
    ] {
        assert!(matches!(
            decode_fields(&partial, None),
            Err(StoreError::Corrupt(_))
        ));
    }
}

#[test]
fn maps_server_error_codes() {
    type Case = (RedisError, fn(&StoreError) -> bool);
    let cases: Vec<Case> = vec![
        (
            RedisError::from((ErrorKind::Server(ServerErrorKind::ReadOnly), "read only")),
            |e| matches!(e, StoreError::ReadOnly(_)),
        ),
        (
            make_extension_error("OOM".into(), Some("command not allowed".into())),
            |e| matches!(e, StoreError::OutOfMemory(_)),
        ),
        (
            RedisError::from((ErrorKind::Server(ServerErrorKind::NoPerm), "no perm")),
            |e| matches!(e, StoreError::PermissionDenied(_)),
        ),
        (
            make_extension_error(
                "WRONGPASS".into(),
                Some("invalid username-password pair".into()),
            ),
            |e| matches!(e, StoreError::PermissionDenied(_)),
        ),
        (
            make_extension_error("NOAUTH".into(), Some("authentication required".into())),
            |e| matches!(e, StoreError::PermissionDenied(_)),
        ),
        (
            RedisError::from((ErrorKind::AuthenticationFailed, "auth")),
            |e| matches!(e, StoreError::PermissionDenied(_)),
        ),
        (make_extension_error("WRONGTYPE".into(), None), |e| {
            matches!(e, StoreError::Corrupt(_))
        }),
        (
            RedisError::from((ErrorKind::Server(ServerErrorKind::BusyLoading), "loading")),
            |e| matches!(e, StoreError::Unavailable(_)),
        ),
        (
            RedisError::from(io::Error::new(io::ErrorKind::ConnectionRefused, "refused")),
            |e| matches!(e, StoreError::Unavailable(m) if m.contains("refused")),
        ),
        (
            RedisError::from(io::Error::new(io::ErrorKind::ConnectionReset, "reset")),
            |e| matches!(e, StoreError::Unavailable(_)),
        ),
        (
            RedisError::from((ErrorKind::UnexpectedReturnType, "type")),
            |e| matches!(e, StoreError::Corrupt(_)),
        ),
    ];
    for (err, ok) in cases {
        let mapped = map_error(&err);
        assert!(ok(&mapped), "{err:?} mapped to {mapped:?}");
    }
}

#[test]
fn mapped_errors_do_not_echo_server_text() {
    let err = make_extension_error("ERR".into(), Some("user value `hunter2` leaked".into()));
    let mapped = map_error(&err);
    assert!(!mapped.to_string().contains("hunter2"), "{mapped}");
    // An odd code is not echoed either.
    let err = make_extension_error("hunter2-code".into(), None);
    assert!(!map_error(&err).to_string().contains("hunter2"));
}

#[test]
fn only_transport_errors_drop_the_connection() {
    assert!(breaks_connection(&RedisError::from(io::Error::new(
        io::ErrorKind::BrokenPipe,
        "pipe"
    ))));
    assert!(!breaks_connection(&RedisError::from((
        ErrorKind::Server(ServerErrorKind::ReadOnly),
        "read only"
    ))));
    assert!(!breaks_connection(&make_extension_error(
        "OOM".into(),
        None
    )));
    assert!(!breaks_connection(&make_extension_error(
        "NOPERM".into(),
        None
    )));
}
