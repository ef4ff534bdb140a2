//! Token identities in policies: bindings by issuer, subject, claim and
//! scope; claim, MFA, credential-kind and role conditions.

use serde_json::json;

use crate::test_util::{load, load_err, spiffe, token, Ask};
use crate::Reason;
use portcullis_identity::{Principal, Thumbprint};

const IDP: &str = "https://idp.example";

const POLICY: &str = r#"
revision: 1
roles:
  user: {}
  admin: { inherits: [user] }
  reader: {}
  frontend: {}
  alice: {}
bindings:
  - { role: user, issuer: "https://idp.example" }
  - { role: admin, issuer: "https://idp.example", claim: realm_access.roles, value: admin }
  - { role: reader, issuer: "https://idp.example", scope: "api:read" }
  - { role: alice, issuer: "https://idp.example", subject: alice }
  - { role: frontend, spiffe_id: "spiffe://example.org/ns/prod/sa/web" }
rules:
  - { id: me, effect: allow, roles: [user], route: api, path: "/me" }
  - { id: admin, effect: allow, roles: [admin], route: api, path: "/admin/**",
      when: { mfa: { methods: [otp, hwk], max_age: 15m } } }
  - { id: read, effect: allow, roles: [reader], route: api, path: "/data/**", methods: [GET] }
  - { id: alice-only, effect: allow, roles: [alice], route: api, path: "/alice" }
  - { id: eng, effect: allow, roles: [user], route: api, path: "/eng",
      when: { claims: { department: [eng, ops], email_verified: true } } }
  - { id: tenant, effect: allow, roles: [user], route: api, path: "/t/{tenant}/**",
      when: { equal: { tenant: token.claim.org.id } } }
  - { id: both, effect: allow, roles: [user], route: api, path: "/both",
      when: { authn: [mtls, token], has_roles: [frontend] } }
  - { id: bound, effect: allow, roles: [user], route: api, path: "/bound",
      when: { authn: [bound_token] } }
  - { id: no-contractors, effect: deny, route: api, path: "/admin/**",
      when: { claims: { employment: contractor } } }
"#;

/// 2026-12-04T10:00:00Z in Unix seconds.
const NOW: i64 = 1_796_378_400;

fn user(extra: serde_json::Value) -> Principal {
    let mut claims = json!({"iss": IDP, "sub": "bob", "employment": "staff"});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    token(claims)
}

#[test]
fn any_token_of_the_issuer_gets_the_issuer_binding() {
    let p = load(POLICY);
    let d = Ask::new(&p).path(&user(json!({})), "/me");
    assert!(d.is_allowed(), "{}", d.explain());
    assert_eq!(d.rule(), Some("me"));
}

#[test]
fn another_issuer_gets_nothing() {
    let p = load(POLICY);
    let other = token(json!({"iss": "https://evil.example", "sub": "alice",
        "realm_access": {"roles": ["admin"]}, "scope": "api:read"}));
    assert_eq!(p.roles_of(&other).count(), 0);
    let d = Ask::new(&p).path(&other, "/me");
    assert_eq!(d.reason(), Reason::NoRoles);
}

#[test]
fn nested_claim_binding() {
    let p = load(POLICY);
    let admin = user(json!({"realm_access": {"roles": ["admin"]}}));
    let roles: Vec<_> = p.roles_of(&admin).collect();
    assert_eq!(roles, vec!["admin", "user"]);
    let not = user(json!({"realm_access": {"roles": "admins"}}));
    assert_eq!(p.roles_of(&not).collect::<Vec<_>>(), vec!["user"]);
    // A top-level claim spelled like the path does not stand in for the
    // nested one: a token with both binds neither.
    let forged = user(json!({
        "realm_access": {"roles": ["staff"]},
        "realm_access.roles": ["admin"],
    }));
    assert_eq!(p.roles_of(&forged).collect::<Vec<_>>(), vec!["user"]);
}

#[test]
fn a_token_with_a_claim_the_policy_reads_both_whole_and_nested_is_denied() {
    let p = load(POLICY);
    // Allowed as it is...
    let plain = user(json!({"realm_access": {"roles": ["staff"]}, "org": {"id": "acme"}}));
    assert!(Ask::new(&p).path(&plain, "/me").is_allowed());
    // ...denied with a top-level claim spelled like a path the policy
    // reads: a binding's (`realm_access.roles`) or a condition's
    // (`token.claim.org.id` in `when.equal`). Dropping the nested roles
    // would otherwise escape deny rules written for those roles.
    for extra in [
        json!({"realm_access": {"roles": ["staff"]}, "realm_access.roles": ["admin"]}),
        json!({"org": {"id": "acme"}, "org.id": "other"}),
    ] {
        let d = Ask::new(&p).path(&user(extra.clone()), "/me");
        assert_eq!(d.reason(), Reason::AmbiguousClaim, "{extra}");
        assert!(!d.is_allowed());
        assert!(
            d.explain()
                .starts_with("deny (ambiguous_claim): the token has a top-level claim named `"),
            "{}",
            d.explain()
        );
    }
    // A top-level claim with dots the policy never reads is no matter.
    let other = user(json!({"a.b": 1, "a": {"b": 2}}));
    assert!(Ask::new(&p).path(&other, "/me").is_allowed());
}

#[test]
fn has_roles_that_a_token_can_grant_too_is_reported() {
    // As written, `frontend` comes from certificates only.
    assert!(load(POLICY).warnings().is_empty());
    // A token binding that grants it, directly or by inheritance, makes
    // `has_roles: [frontend]` hold without a workload.
    for binding in [
        r#"  - { role: frontend, issuer: "https://idp.example", claim: groups, value: web }"#,
        r#"  - { role: admin, issuer: "https://idp.example", scope: "web" }"#,
    ] {
        let mut text = POLICY.replace("bindings:\n", &format!("bindings:\n{binding}\n"));
        if binding.contains("admin") {
            text = text.replace(
                "admin: { inherits: [user] }",
                "admin: { inherits: [user, frontend] }",
            );
        }
        let w = load(&text).warnings();
        assert_eq!(
            w,
            ["rule `both`: `has_roles: [frontend]` holds for a token as well as a certificate: certificate bindings and token bindings both grant `frontend`"],
            "{binding}"
        );
    }
}

#[test]
fn scope_and_subject_bindings() {
    let p = load(POLICY);
    let r = user(json!({"scope": "openid api:read"}));
    assert!(Ask::new(&p).path(&r, "/data/x").is_allowed());
    let w = user(json!({"scope": "api:write"}));
    assert_eq!(
        Ask::new(&p).path(&w, "/data/x").reason(),
        Reason::RoleNotPermitted
    );
    let alice = token(json!({"iss": IDP, "sub": "alice"}));
    assert!(Ask::new(&p).path(&alice, "/alice").is_allowed());
    assert!(!Ask::new(&p).path(&user(json!({})), "/alice").is_allowed());
}

/// A policy allowing every user of the issuer everything on route `api`,
/// but for the deny rules `denies` (YAML list items).
fn every_user_allowed_but(denies: &str) -> crate::Policy {
    load(&format!(
        r#"
revision: 1
roles: {{ user: {{}} }}
bindings: [ {{ role: user, issuer: "https://idp.example" }} ]
rules:
  - {{ id: all, effect: allow, roles: [user], route: api, path: "/**" }}
{denies}"#
    ))
}

#[test]
fn an_mfa_deny_is_not_escaped_by_a_token_without_the_claim_it_checks() {
    let p = every_user_allowed_but(
        r#"
  - { id: low-acr, effect: deny, route: api, path: "/acr/**", when: { mfa: { acr: ["urn:low"] } } }
  - { id: pwd-only, effect: deny, route: api, path: "/amr/**", when: { mfa: { methods: [pwd] } } }
"#,
    );
    let ask = Ask::new(&p);
    // Stated and matching: denied; stated otherwise: not this deny.
    assert_eq!(
        ask.path(&user(json!({"acr": "urn:low"})), "/acr/x").rule(),
        Some("low-acr")
    );
    assert!(ask
        .path(&user(json!({"acr": "urn:high"})), "/acr/x")
        .is_allowed());
    assert_eq!(
        ask.path(&user(json!({"amr": ["pwd"]})), "/amr/x").rule(),
        Some("pwd-only")
    );
    assert!(ask
        .path(&user(json!({"amr": ["otp"]})), "/amr/x")
        .is_allowed());
    // Missing, or in another shape: unknown, so the deny holds.
    for claims in [json!({}), json!({"acr": ["urn:low"]}), json!({"acr": 1})] {
        let d = ask.path(&user(claims.clone()), "/acr/x");
        assert_eq!(
            d.reason(),
            Reason::ExplicitDeny,
            "{claims}: {}",
            d.explain()
        );
    }
    for claims in [json!({}), json!({"amr": "pwd"}), json!({"amr": ["otp", 1]})] {
        let d = ask.path(&user(claims.clone()), "/amr/x");
        assert_eq!(
            d.reason(),
            Reason::ExplicitDeny,
            "{claims}: {}",
            d.explain()
        );
    }
}

#[test]
fn a_claim_number_matches_however_the_issuer_wrote_it() {
    let p = every_user_allowed_but(
        r#"
  - { id: blocked-dept, effect: deny, route: api, path: "/**", when: { claims: { dept: [1000, 1e3] } } }
"#,
    );
    let ask = Ask::new(&p);
    for dept in [json!(1000), json!(1000.0), json!(1e3), json!("1000")] {
        let d = ask.path(&user(json!({ "dept": dept })), "/x");
        assert_eq!(d.rule(), Some("blocked-dept"), "{dept}: {}", d.explain());
    }
    assert!(ask.path(&user(json!({"dept": 1001})), "/x").is_allowed());
}

#[test]
fn mfa_freshness() {
    let p = load(POLICY);
    let ask = Ask::new(&p);
    let fresh = user(
        json!({"realm_access": {"roles": ["admin"]}, "amr": ["pwd", "otp"], "auth_time": NOW - 600}),
    );
    let d = ask.path(&fresh, "/admin/x");
    assert!(d.is_allowed(), "{}", d.explain());

    let stale = user(
        json!({"realm_access": {"roles": ["admin"]}, "amr": ["pwd", "otp"], "auth_time": NOW - 1000}),
    );
    let d = ask.path(&stale, "/admin/x");
    assert_eq!(d.reason(), Reason::ConditionFailed);
    let f = d.failed_condition().unwrap();
    assert_eq!(f.condition, "when.mfa");
    assert!(f.detail.contains("1000s old"), "{}", f.detail);

    let pwd_only =
        user(json!({"realm_access": {"roles": ["admin"]}, "amr": ["pwd"], "auth_time": NOW - 10}));
    let d = ask.path(&pwd_only, "/admin/x");
    assert_eq!(d.failed_condition().unwrap().condition, "when.mfa");
    assert!(d.failed_condition().unwrap().detail.contains("`otp`"));

    let no_time = user(json!({"realm_access": {"roles": ["admin"]}, "amr": ["hwk"]}));
    assert_eq!(
        ask.path(&no_time, "/admin/x").reason(),
        Reason::ConditionFailed
    );

    let string_time = user(
        json!({"realm_access": {"roles": ["admin"]}, "amr": ["hwk"], "auth_time": (NOW - 10).to_string()}),
    );
    assert!(!ask.path(&string_time, "/admin/x").is_allowed());

    let future = user(
        json!({"realm_access": {"roles": ["admin"]}, "amr": ["hwk"], "auth_time": NOW + 3600}),
    );
    assert!(
        !ask.path(&future, "/admin/x").is_allowed(),
        "auth_time in the future is not fresh"
    );
}

#[test]
fn deny_on_claim_wins_and_missing_claim_does_not_escape_it() {
    let p = load(POLICY);
    let c = user(
        json!({"realm_access": {"roles": ["admin"]}, "amr": ["otp"], "auth_time": NOW, "employment": "contractor"}),
    );
    let d = Ask::new(&p).path(&c, "/admin/x");
    assert_eq!(d.reason(), Reason::ExplicitDeny);
    assert_eq!(d.rule(), Some("no-contractors"));
    // Without the claim the deny rule cannot be evaluated: it applies.
    let unknown = token(
        json!({"iss": IDP, "sub": "bob", "realm_access": {"roles": ["admin"]}, "amr": ["otp"], "auth_time": NOW}),
    );
    assert_eq!(
        Ask::new(&p).path(&unknown, "/admin/x").reason(),
        Reason::ExplicitDeny
    );
    let employee = user(
        json!({"realm_access": {"roles": ["admin"]}, "amr": ["otp"], "auth_time": NOW, "employment": "staff"}),
    );
    assert!(Ask::new(&p).path(&employee, "/admin/x").is_allowed());
}

#[test]
fn claim_conditions() {
    let p = load(POLICY);
    let ask = Ask::new(&p);
    assert!(ask
        .path(
            &user(json!({"department": "ops", "email_verified": true})),
            "/eng"
        )
        .is_allowed());
    assert!(ask
        .path(
            &user(json!({"department": ["hr", "eng"], "email_verified": true})),
            "/eng"
        )
        .is_allowed());
    let d = ask.path(
        &user(json!({"department": "hr", "email_verified": true})),
        "/eng",
    );
    assert_eq!(
        d.failed_condition().unwrap().condition,
        "when.claims.department"
    );
    assert!(d.failed_condition().unwrap().detail.contains("`hr`"));
    let d = ask.path(
        &user(json!({"department": "eng", "email_verified": "true"})),
        "/eng",
    );
    assert!(
        d.is_allowed(),
        "booleans compare as their JSON text: {}",
        d.explain()
    );
    let d = ask.path(&user(json!({"department": "eng"})), "/eng");
    assert!(d
        .failed_condition()
        .unwrap()
        .detail
        .contains("no claim `email_verified`"));
}

#[test]
fn path_parameter_equal_to_a_claim() {
    let p = load(POLICY);
    let ask = Ask::new(&p);
    let acme = user(json!({"org": {"id": "acme"}}));
    assert!(ask.path(&acme, "/t/acme/x").is_allowed());
    assert!(!ask.path(&acme, "/t/globex/x").is_allowed());
    assert!(!ask.path(&user(json!({})), "/t/acme/x").is_allowed());
}

fn cert_and_token(thumb: u8, bound: Option<u8>) -> Principal {
    let mut p = spiffe("spiffe://example.org/ns/prod/sa/web");
    if let Some(c) = p.cert.as_mut() {
        c.thumbprint = Thumbprint([thumb; 32]);
    }
    let t = user(json!({}));
    let mut t = (*t.token.unwrap()).clone();
    t.bound_to = bound.map(|b| Thumbprint([b; 32]));
    p.token = Some(std::sync::Arc::new(t));
    p
}

#[test]
fn workload_and_user_together() {
    let p = load(POLICY);
    let ask = Ask::new(&p);
    let both = cert_and_token(1, None);
    assert_eq!(
        p.roles_of(&both).collect::<Vec<_>>(),
        vec!["frontend", "user"]
    );
    assert!(ask.path(&both, "/both").is_allowed());
    let d = ask.path(&user(json!({})), "/both");
    assert_eq!(d.failed_condition().unwrap().condition, "when.authn");
    assert!(d.failed_condition().unwrap().detail.contains("mtls"));
    // Another workload with a token: has the token but not the role.
    let mut other = cert_and_token(1, None);
    other.cert.as_mut().unwrap().spiffe_id =
        Some(portcullis_identity::SpiffeId::parse("spiffe://example.org/ns/prod/sa/db").unwrap());
    let d = ask.path(&other, "/both");
    assert_eq!(d.failed_condition().unwrap().condition, "when.has_roles");
}

#[test]
fn bound_tokens() {
    let p = load(POLICY);
    let ask = Ask::new(&p);
    assert!(ask.path(&cert_and_token(7, Some(7)), "/bound").is_allowed());
    assert!(
        !ask.path(&cert_and_token(7, Some(8)), "/bound").is_allowed(),
        "bound to another certificate"
    );
    assert!(
        !ask.path(&cert_and_token(7, None), "/bound").is_allowed(),
        "unbound token"
    );
    let mut no_cert = cert_and_token(7, Some(7));
    no_cert.cert = None;
    assert!(
        !ask.path(&no_cert, "/bound").is_allowed(),
        "bound token without its certificate"
    );
}

#[test]
fn token_binding_errors() {
    let base = "revision: 1\nroles: { r: {} }\nbindings:\n  - ";
    let e = load_err(&format!("{base}{{ role: r, subject: alice }}"));
    assert!(
        e.contains("bindings[0].subject") && e.contains("need `issuer`"),
        "{e}"
    );
    let e = load_err(&format!(
        "{base}{{ role: r, issuer: x, spiffe_id: \"spiffe://a.b/c\" }}"
    ));
    assert!(e.contains("not both"), "{e}");
    let e = load_err(&format!(
        "{base}{{ role: r, issuer: x, subject: a, scope: b }}"
    ));
    assert!(e.contains("at most one"), "{e}");
    let e = load_err(&format!("{base}{{ role: r, issuer: x, claim: groups }}"));
    assert!(e.contains("`claim` and `value` go together"), "{e}");
    let e = load_err(&format!("{base}{{ role: r, issuer: \"\" }}"));
    assert!(e.contains("bindings[0].issuer"), "{e}");
    let e = load_err(&format!(
        "{base}{{ role: r, issuer: x, claim: \"a..b\", value: 1 }}"
    ));
    assert!(e.contains("bindings[0].claim"), "{e}");
    let e = load_err(&format!("{base}{{ role: r, issuer: x, scope: \"a b\" }}"));
    assert!(e.contains("bindings[0].scope"), "{e}");
}

#[test]
fn condition_errors() {
    let rule = |when: &str| {
        format!("revision: 1\nroles: {{ r: {{}} }}\nrules:\n  - {{ id: a, effect: allow, roles: [r], route: api, when: {when} }}\n")
    };
    let e = load_err(&rule("{ authn: [password] }"));
    assert!(e.contains("rules[0].when.authn[0]"), "{e}");
    let e = load_err(&rule("{ has_roles: [nobody] }"));
    assert!(e.contains("unknown role `nobody`"), "{e}");
    let e = load_err(&rule("{ mfa: {} }"));
    assert!(e.contains("rules[0].when.mfa"), "{e}");
    let e = load_err(&rule("{ mfa: { max_age: 15 } }"));
    assert!(e.contains("max_age"), "{e}");
    let e = load_err(&rule("{ mfa: { max_age: 2d } }"));
    assert!(e.contains("at most 1d"), "{e}");
    let e = load_err(&rule("{ claims: { groups: [] } }"));
    assert!(e.contains("rules[0].when.claims.groups"), "{e}");
    let e = load_err(&rule("{ claims: { groups: { a: b } } }"));
    assert!(e.contains("expected a string, boolean or number"), "{e}");
    let e = load_err(&rule("{ equal: { x: token.claim } }"));
    assert!(
        e.contains("path has no parameter") || e.contains("invalid attribute"),
        "{e}"
    );
}

#[test]
fn token_only_principal_is_not_anonymous() {
    let t = user(json!({}));
    assert!(!t.is_anonymous());
    assert_eq!(t.display_name(), "bob");
}
