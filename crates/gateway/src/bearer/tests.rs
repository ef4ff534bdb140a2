use http::HeaderValue;

use super::bearer_token;

#[test]
fn bearer_scheme_parsing() {
    let v = |s: &str| HeaderValue::from_str(s).unwrap();
    assert_eq!(
        bearer_token(&v("Bearer abc.def.ghi")),
        Some(Ok("abc.def.ghi"))
    );
    assert_eq!(bearer_token(&v("bearer abc")), Some(Ok("abc")));
    assert_eq!(bearer_token(&v("BEARER  abc ")), Some(Ok("abc")));
    assert_eq!(bearer_token(&v("Basic dXNlcjpwdw==")), None);
    assert!(matches!(bearer_token(&v("Bearer")), Some(Err(_))));
    assert!(matches!(bearer_token(&v("Bearer a b")), Some(Err(_))));
    assert!(matches!(bearer_token(&v("Bearer a,b")), Some(Err(_))));
    assert!(matches!(bearer_token(&v("Bearer a\"b")), Some(Err(_))));
}

#[test]
fn a_bearer_token_spelled_otherwise_is_refused_not_passed_on() {
    let v = |b: &[u8]| HeaderValue::from_bytes(b).unwrap();
    for value in [
        &b"Bearer\tabc.def.ghi"[..],
        b"Bearer\xc2\xa0abc.def.ghi",
        b"Bearer abc.def.ghi\xff",
        b"Bearerabc.def.ghi",
        b"bearer\t\tabc",
    ] {
        assert!(
            matches!(bearer_token(&v(value)), Some(Err(_))),
            "{}",
            String::from_utf8_lossy(value)
        );
    }
    // Other schemes are not the gateway's, whatever their bytes.
    for value in [&b"Basic dXNlcjpwdw=="[..], b"DPoP abc", b"Negotiate \xff"] {
        assert_eq!(bearer_token(&v(value)), None);
    }
}
