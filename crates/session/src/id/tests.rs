use super::*;

#[test]
fn ids_round_trip_through_the_cookie_and_are_random() {
    let a = SessionId::generate().unwrap();
    let b = SessionId::generate().unwrap();
    assert!(!a.ct_eq(&b));
    let cookie = a.to_cookie();
    assert_eq!(cookie.len(), 43);
    let back = SessionId::from_cookie(&cookie).unwrap();
    assert!(back.ct_eq(&a));
    assert_eq!(back.key(), a.key());
    assert_ne!(a.key(), b.key());
}

#[test]
fn malformed_cookies_are_refused() {
    let good = SessionId::generate().unwrap().to_cookie().to_string();
    for bad in [
        "",
        "short",
        &format!("{}=", &good[..42]),
        &format!("{}+", &good[..42]),
        &format!("{good}A"),
        &" ".repeat(43),
    ] {
        assert!(SessionId::from_cookie(bad).is_none(), "{bad:?}");
    }
}

#[test]
fn debug_never_shows_the_id() {
    let id = SessionId::generate().unwrap();
    let cookie = id.to_cookie();
    let d = format!("{id:?}");
    assert!(!d.contains(cookie.as_str()));
    assert!(d.contains("redacted"));
    let key = id.key();
    assert_eq!(SessionKey::from_hex(&key.to_hex()), Some(key));
    assert!(format!("{key:?}").len() < 30);
}
