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
