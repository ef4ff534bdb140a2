use serde_json::json;

use super::*;

fn token(claims: Value) -> TokenIdentity {
    let Value::Object(claims) = claims else {
        panic!("claims must be an object")
    };
    TokenIdentity {
        issuer: "https://idp.example".into(),
        subject: claims.get("sub").and_then(Value::as_str).map(str::to_owned),
        claims,
        bound_to: None,
    }
}

fn path(s: &str) -> ClaimPath {
    ClaimPath::parse(s).unwrap()
}

#[test]
fn nested_claim_paths() {
    let t = token(json!({
        "sub": "alice",
        "realm_access": {"roles": ["admin", "staff"]},
        "https://example.com/groups": ["ops"],
        "dept": "eng",
        "level": 3,
        "verified": true,
    }));
    assert_eq!(
        t.claim_values(&path("realm_access.roles")),
        vec!["admin", "staff"]
    );
    assert_eq!(
        t.claim_values(&path("https://example.com/groups")),
        vec!["ops"]
    );
    assert_eq!(t.claim_values(&path("dept")), vec!["eng"]);
    assert_eq!(t.claim_values(&path("level")), vec!["3"]);
    assert_eq!(t.claim_values(&path("verified")), vec!["true"]);
    assert!(
        t.claim_values(&path("realm_access")).is_empty(),
        "objects give no values"
    );
    assert!(t.claim_values(&path("realm_access.missing")).is_empty());
    assert!(t.claim_values(&path("dept.sub")).is_empty());
}

#[test]
fn a_dotted_path_found_both_whole_and_nested_finds_nothing() {
    // A top-level claim named like the nested path must not stand in for
    // the nested value (nor the nested one for it).
    let t = token(json!({
        "realm_access": {"roles": ["staff"]},
        "realm_access.roles": ["admin"],
    }));
    assert!(t.claim_values(&path("realm_access.roles")).is_empty());
    assert!(path("realm_access.roles").is_ambiguous_in(&t.claims));
    assert!(!path("realm_access").is_ambiguous_in(&t.claims));
    // Either alone is found.
    let t = token(json!({"realm_access.roles": ["admin"]}));
    assert_eq!(t.claim_values(&path("realm_access.roles")), vec!["admin"]);
    assert!(!path("realm_access.roles").is_ambiguous_in(&t.claims));
    let t = token(json!({"realm_access": {"roles": ["staff"]}}));
    assert_eq!(t.claim_values(&path("realm_access.roles")), vec!["staff"]);
    assert!(!path("realm_access.roles").is_ambiguous_in(&t.claims));
    // A nested null is still a value that is there.
    let t = token(json!({"a.b": 1, "a": {"b": null}}));
    assert!(path("a.b").is_ambiguous_in(&t.claims));
    // A path without a dot has only one place to be.
    let t = token(json!({"groups": ["ops"]}));
    assert_eq!(t.claim_values(&path("groups")), vec!["ops"]);
}

#[test]
fn claim_path_syntax() {
    assert!(ClaimPath::parse("").is_err());
    assert!(ClaimPath::parse("a..b").is_err());
    assert!(ClaimPath::parse(".a").is_err());
    assert!(ClaimPath::parse("a b").is_err());
    assert!(ClaimPath::parse(&"a.".repeat(9)).is_err());
    assert!(ClaimPath::parse(&"x".repeat(257)).is_err());
    assert_eq!(path("realm_access.roles").to_string(), "realm_access.roles");
}

#[test]
fn scopes_amr_acr_auth_time() {
    let t = token(
        json!({"scope": "api:read  api:write", "amr": ["pwd", "otp"], "acr": "mfa", "auth_time": 1700000000}),
    );
    assert_eq!(t.scopes(), vec!["api:read", "api:write"]);
    assert_eq!(t.amr(), vec!["pwd", "otp"]);
    assert_eq!(t.acr(), Some("mfa"));
    assert_eq!(t.auth_time(), Some(1_700_000_000));
    let t = token(json!({"scp": ["a", "b"], "auth_time": "1700000000", "amr": "otp"}));
    assert_eq!(t.scopes(), vec!["a", "b"]);
    assert_eq!(t.auth_time(), None, "a string auth_time is not a time");
    assert!(t.amr().is_empty(), "amr must be an array");
}

#[test]
fn debug_does_not_dump_claims() {
    let t = token(json!({"sub": "alice", "email": "alice@example.com"}));
    let d = format!("{t:?}");
    assert!(d.contains("alice"));
    assert!(!d.contains("alice@example.com"));
}

#[test]
fn integral_numbers_compare_as_integers_however_they_are_written() {
    let n = |text: &str| {
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        match v {
            serde_json::Value::Number(n) => number_text(&n),
            _ => unreachable!(),
        }
    };
    assert_eq!(n("1000"), "1000");
    assert_eq!(n("1000.0"), "1000");
    assert_eq!(n("1e3"), "1000");
    assert_eq!(n("-7.0"), "-7");
    assert_eq!(n("12.5"), "12.5");
    assert_eq!(
        n("1e300"),
        "1e+300",
        "beyond exact integers: as serde_json writes it"
    );
}
