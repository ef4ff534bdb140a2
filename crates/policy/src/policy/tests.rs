use super::*;
use crate::test_util::{cert, friday_10z, ip, load, spiffe, Ask};

const POLICY: &str = r#"
revision: "2026-12-04.1"
roles:
  viewer: {}
  editor: { inherits: [viewer] }
  admin: { inherits: [editor] }
  partner: {}
bindings:
  - { role: admin, spiffe_id: "spiffe://example.org/ns/ops/sa/admin" }
  - { role: viewer, spiffe_id_prefix: "spiffe://example.org/ns/prod" }
  - { role: editor, cert_subject: "CN=alice,O=Example" }
  - { role: partner, cert_issuer: "CN=Partner CA,O=Partner" }
rules:
  - id: tenant-read
    effect: allow
    roles: [viewer]
    route: api
    methods: [GET, HEAD]
    path: "/api/tenants/{tenant}/**"
    when:
      equal: { tenant: "spiffe.segment[3]" }
  - id: docs-read
    effect: allow
    roles: [viewer, partner]
    route: api
    methods: [GET]
    path: /api/docs/*
  - id: edit
    effect: allow
    roles: [editor]
    routes: [api, web]
    methods: [PUT, POST]
    path: /api/docs/{doc}
  - id: admin-all
    effect: allow
    roles: [admin]
    route: api
    when:
      source_ip: ["10.0.0.0/8", "2001:db8::/32"]
      time: { days: [mon, tue, wed, thu, fri], from: "08:00", to: "18:00", tz: Europe/Berlin }
  - id: no-secrets
    effect: deny
    route: api
    path: /api/docs/secret
  - id: editors-no-delete
    effect: deny
    roles: [editor]
    route: api
    methods: [DELETE]
  - id: health
    effect: allow
    roles: [partner]
    route: api
    path: /
"#;

fn policy() -> Policy {
    load(POLICY)
}

fn admin() -> Principal {
    spiffe("spiffe://example.org/ns/ops/sa/admin")
}

fn prod_web() -> Principal {
    spiffe("spiffe://example.org/ns/prod/sa/web")
}

fn alice() -> Principal {
    cert(None, "CN=alice,O=Example", "CN=Internal CA")
}

fn partner() -> Principal {
    cert(None, "CN=bob,O=Partner", "CN=Partner CA,O=Partner")
}

#[test]
fn policy_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Policy>();
    check::<Decision>();
}

#[test]
fn allow_names_the_rule_and_captured_params() {
    let p = policy();
    // spiffe.segment[3] of .../ns/prod/sa/web is `web`.
    let d = Ask::new(&p).path(&prod_web(), "/api/tenants/web/reports/1");
    assert!(d.is_allowed(), "{}", d.explain());
    assert_eq!(d.reason_code(), "allow");
    assert_eq!(d.rule(), Some("tenant-read"));
    assert_eq!(d.params().collect::<Vec<_>>(), [("tenant", "web")]);
    assert_eq!(d.roles().collect::<Vec<_>>(), ["viewer"]);
    assert_eq!(d.revision(), "2026-12-04.1");
    assert_eq!(
        d.explain(),
        "allow by rule `tenant-read` with tenant=`web`; roles [viewer]; revision `2026-12-04.1`"
    );
}

#[test]
fn equal_condition_failure_names_rule_and_condition() {
    let p = policy();
    let d = Ask::new(&p).path(&prod_web(), "/api/tenants/acme/reports");
    assert!(!d.is_allowed());
    assert_eq!(d.reason_code(), "condition_failed");
    assert_eq!(d.rule(), Some("tenant-read"));
    let f = d.failed_condition().unwrap();
    assert_eq!(f.condition, "when.equal.tenant");
    assert_eq!(
        d.explain(),
        "deny (condition_failed): rule `tenant-read` condition `when.equal.tenant` not met: path parameter `tenant` is `acme` but `spiffe.segment[3]` is `web`; roles [viewer]; revision `2026-12-04.1`"
    );
}

#[test]
fn missing_attribute_never_allows() {
    let p = policy();
    // Alice is an editor (so a viewer) without a SPIFFE ID.
    let d = Ask::new(&p).path(&alice(), "/api/tenants/web/x");
    assert_eq!(d.reason_code(), "condition_failed");
    assert!(d
        .failed_condition()
        .unwrap()
        .detail
        .contains("no attribute"));
}

#[test]
fn explicit_deny_wins_over_allow() {
    let p = policy();
    // docs-read allows /api/docs/* for viewers; no-secrets denies one path.
    let d = Ask::new(&p).path(&prod_web(), "/api/docs/readme");
    assert!(d.is_allowed());
    let d = Ask::new(&p).path(&prod_web(), "/api/docs/secret");
    assert!(!d.is_allowed());
    assert_eq!(d.reason_code(), "explicit_deny");
    assert_eq!(d.rule(), Some("no-secrets"));
    assert_eq!(
        d.explain(),
        "deny (explicit_deny) by rule `no-secrets`; roles [viewer]; revision `2026-12-04.1`"
    );
    // Even the admin, whose admin-all rule matches every path.
    let d = Ask::new(&p)
        .at("2026-12-04T10:00:00Z")
        .path(&admin(), "/api/docs/secret");
    assert_eq!(d.reason_code(), "explicit_deny");
    // Trailing slash does not escape the deny.
    let d = Ask::new(&p).path(&prod_web(), "/api/docs/secret/");
    assert_eq!(d.reason_code(), "explicit_deny");
}

#[test]
fn deny_without_roles_applies_to_anonymous() {
    let p = policy();
    let d = Ask::new(&p).path(&Principal::anonymous(), "/api/docs/secret");
    assert_eq!(d.reason_code(), "explicit_deny");
    assert_eq!(d.roles().count(), 0);
}

#[test]
fn deny_with_roles_applies_to_holders_including_inherited() {
    let p = policy();
    // editors-no-delete names editor; admin inherits editor.
    let d = Ask::new(&p).method("DELETE").path(&admin(), "/api/x");
    assert_eq!(d.reason_code(), "explicit_deny");
    assert_eq!(d.rule(), Some("editors-no-delete"));
    let d = Ask::new(&p).method("DELETE").path(&alice(), "/api/x");
    assert_eq!(d.rule(), Some("editors-no-delete"));
    // A viewer does not hold editor: only admin-all covers DELETE.
    let d = Ask::new(&p).method("DELETE").path(&prod_web(), "/api/x");
    assert_eq!(d.reason_code(), "role_not_permitted");
}

#[test]
fn anonymous_and_unbound_principals_have_no_roles() {
    let p = policy();
    for who in [
        Principal::anonymous(),
        spiffe("spiffe://example.org/ns/dev/sa/web"),
        cert(None, "CN=mallory", "CN=Other CA"),
    ] {
        let d = Ask::new(&p).path(&who, "/api/docs/readme");
        assert!(!d.is_allowed());
        assert_eq!(d.reason_code(), "no_roles");
        assert_eq!(d.rule(), None);
        assert!(d
            .explain()
            .starts_with("deny (no_roles): the principal has no roles; roles []"));
    }
}

#[test]
fn no_matching_rule_for_route_method_or_path() {
    let p = policy();
    let a = alice();
    for d in [
        Ask::new(&p).route("other").path(&a, "/api/docs/readme"),
        Ask::new(&p).route("web").path(&a, "/api/docs/readme"),
        Ask::new(&p)
            .route("web")
            .method("POST")
            .path(&a, "/api/other"),
        Ask::new(&p)
            .route("web")
            .method("POST")
            .path(&a, "/api/docs"),
        Ask::new(&p)
            .route("web")
            .method("POST")
            .path(&a, "/api/docs/a/b"),
    ] {
        assert_eq!(d.reason_code(), "no_matching_rule", "{}", d.explain());
        assert_eq!(d.rule(), None);
        assert!(d
            .explain()
            .starts_with("deny (no_matching_rule): no allow rule matches"));
    }
    assert!(Ask::new(&p)
        .route("web")
        .method("POST")
        .path(&a, "/api/docs/a")
        .is_allowed());
}

#[test]
fn role_not_permitted_when_rules_exist_for_other_roles() {
    let p = policy();
    // edit allows PUT on /api/docs/{doc} for editors only.
    let d = Ask::new(&p)
        .method("PUT")
        .path(&prod_web(), "/api/docs/readme");
    assert_eq!(d.reason_code(), "role_not_permitted");
    assert!(d.explain().contains("none for the principal's roles"));
    let d = Ask::new(&p)
        .method("PUT")
        .path(&alice(), "/api/docs/readme");
    assert!(d.is_allowed());
    assert_eq!(d.rule(), Some("edit"));
    assert_eq!(d.params().collect::<Vec<_>>(), [("doc", "readme")]);
}

#[test]
fn rules_with_several_routes_apply_to_each() {
    let p = policy();
    let d = Ask::new(&p)
        .route("web")
        .method("POST")
        .path(&alice(), "/api/docs/x");
    assert_eq!(d.rule(), Some("edit"));
    let d = Ask::new(&p)
        .route("mobile")
        .method("POST")
        .path(&alice(), "/api/docs/x");
    assert_eq!(d.reason_code(), "no_matching_rule");
}

#[test]
fn star_methods_match_every_method() {
    let p = policy();
    for m in ["GET", "PATCH", "OPTIONS", "BREW"] {
        let d = Ask::new(&p).method(m).path(&admin(), "/api/anything");
        assert_eq!(d.rule(), Some("admin-all"), "{m}");
    }
    // Methods are case-sensitive tokens.
    let ask = Ask::new(&p).route("web");
    assert!(ask
        .method("POST")
        .path(&alice(), "/api/docs/readme")
        .is_allowed());
    let d = ask.method("post").path(&alice(), "/api/docs/readme");
    assert_eq!(d.reason_code(), "no_matching_rule");
}

#[test]
fn source_ip_and_time_conditions_are_reported() {
    let p = policy();
    let d = Ask::new(&p).source("192.0.2.1").path(&admin(), "/api/x");
    assert_eq!(d.reason_code(), "condition_failed");
    assert_eq!(d.failed_condition().unwrap().condition, "when.source_ip");
    assert_eq!(
        d.failed_condition().unwrap().detail,
        "source address `192.0.2.1` is in none of the networks"
    );
    let d = Ask::new(&p).source("2001:db8::7").path(&admin(), "/api/x");
    assert!(d.is_allowed());
    // 18:30 Berlin on a Friday.
    let d = Ask::new(&p)
        .at("2026-12-04T17:30:00Z")
        .path(&admin(), "/api/x");
    assert_eq!(d.failed_condition().unwrap().condition, "when.time");
    // Saturday.
    let d = Ask::new(&p)
        .at("2026-12-05T10:00:00Z")
        .path(&admin(), "/api/x");
    assert_eq!(d.reason_code(), "condition_failed");
}

#[test]
fn inherited_roles_grant_inherited_permissions() {
    let p = policy();
    // admin inherits editor inherits viewer: docs-read is a viewer rule.
    let d = Ask::new(&p)
        .at("2026-12-05T10:00:00Z")
        .path(&admin(), "/api/docs/readme");
    assert!(d.is_allowed());
    assert_eq!(d.rule(), Some("docs-read"));
    assert_eq!(d.roles().collect::<Vec<_>>(), ["admin", "editor", "viewer"]);
}

#[test]
fn first_matching_allow_rule_in_file_order_is_named() {
    let p = policy();
    // Both docs-read (rule 1) and admin-all (rule 3) allow the admin.
    let d = Ask::new(&p).path(&admin(), "/api/docs/readme");
    assert_eq!(d.rule(), Some("docs-read"));
}

#[test]
fn prefix_binding_is_segment_aligned() {
    let p = policy();
    let ask = Ask::new(&p);
    for covered in [
        "spiffe://example.org/ns/prod",
        "spiffe://example.org/ns/prod/sa/web",
        "spiffe://example.org/ns/prod/x/y/z",
    ] {
        let d = ask.path(&spiffe(covered), "/api/docs/readme");
        assert!(d.is_allowed(), "{covered}");
    }
    for not_covered in [
        "spiffe://example.org/ns/production",
        "spiffe://example.org/ns/production/sa/web",
        "spiffe://example.org/ns/pro",
        "spiffe://example.org/ns",
        "spiffe://example.com/ns/prod/sa/web",
        "spiffe://example.org/NS/prod",
    ] {
        let d = ask.path(&spiffe(not_covered), "/api/docs/readme");
        assert_eq!(d.reason_code(), "no_roles", "{not_covered}");
    }
}

#[test]
fn trust_domain_prefix_covers_the_whole_domain() {
    let p = load(
        "revision: 1\nroles: {r: {}}\nbindings: [{ role: r, spiffe_id_prefix: \"spiffe://example.org\" }]\nrules: [{ id: a, effect: allow, roles: [r], route: api }]\n",
    );
    let ask = Ask::new(&p);
    assert!(ask.path(&spiffe("spiffe://example.org"), "/").is_allowed());
    assert!(ask
        .path(&spiffe("spiffe://example.org/a/b"), "/")
        .is_allowed());
    assert!(!ask
        .path(&spiffe("spiffe://example.org.evil/a"), "/")
        .is_allowed());
}

#[test]
fn exact_spiffe_binding_does_not_cover_children() {
    let p = policy();
    let d = Ask::new(&p).path(&spiffe("spiffe://example.org/ns/ops/sa/admin/x"), "/api/x");
    assert_eq!(d.reason_code(), "no_roles");
}

#[test]
fn subject_and_issuer_bindings_are_exact() {
    let p = policy();
    let ask = Ask::new(&p).method("PUT");
    assert!(ask.path(&alice(), "/api/docs/x").is_allowed());
    for other in [
        cert(None, "CN=alice", "CN=Internal CA"),
        cert(None, "cn=alice,o=example", "CN=Internal CA"),
        cert(None, "CN=alice,O=Example ", "CN=Internal CA"),
    ] {
        assert_eq!(ask.path(&other, "/api/docs/x").reason_code(), "no_roles");
    }
    let ask = Ask::new(&p);
    let d = ask.path(&partner(), "/");
    assert_eq!(d.rule(), Some("health"));
    assert_eq!(d.roles().collect::<Vec<_>>(), ["partner"]);
    let not_partner = cert(None, "CN=bob,O=Partner", "CN=Partner CA");
    assert_eq!(ask.path(&not_partner, "/").reason_code(), "no_roles");
}

#[test]
fn roles_from_several_bindings_are_merged() {
    let p = policy();
    // A cert issued by the partner CA with a prod SPIFFE ID.
    let both = cert(
        Some("spiffe://example.org/ns/prod/sa/web"),
        "CN=web",
        "CN=Partner CA,O=Partner",
    );
    assert_eq!(p.roles_of(&both).collect::<Vec<_>>(), ["partner", "viewer"]);
    let d = Ask::new(&p).path(&both, "/");
    assert_eq!(d.rule(), Some("health"));
}

#[test]
fn path_patterns_match_by_kind() {
    let p = policy();
    let web = prod_web();
    let ask = Ask::new(&p);
    // `*` needs exactly one non-empty segment.
    assert!(ask.path(&web, "/api/docs/a").is_allowed());
    assert!(!ask.path(&web, "/api/docs/a/b").is_allowed());
    assert!(!ask.path(&web, "/api/docs/").is_allowed());
    // `**` matches zero or more segments.
    assert!(ask.path(&web, "/api/tenants/web").is_allowed());
    assert!(ask.path(&web, "/api/tenants/web/").is_allowed());
    assert!(ask.path(&web, "/api/tenants/web/a/b/c").is_allowed());
    // Literal segments are case-sensitive.
    assert!(!ask.path(&web, "/API/docs/a").is_allowed());
    assert!(!ask.path(&web, "/api/Docs/a").is_allowed());
    // `/` matches only the root.
    let partner = partner();
    assert!(ask.path(&partner, "/").is_allowed());
    assert!(!ask.path(&partner, "/x").is_allowed());
}

#[test]
fn trailing_slash_is_ignored() {
    let p = policy();
    let web = prod_web();
    let ask = Ask::new(&p);
    let d = ask.path(&web, "/api/docs/a/");
    assert_eq!(d.rule(), Some("docs-read"));
    assert_eq!(
        ask.method("PUT")
            .path(&alice(), "/api/docs/a/")
            .params()
            .collect::<Vec<_>>(),
        [("doc", "a")]
    );
}

#[test]
fn unnormalised_paths_are_denied() {
    let p = load(
        "revision: 1\nroles: {r: {}}\nbindings: [{ role: r, spiffe_id_prefix: \"spiffe://example.org\" }]\nrules: [{ id: a, effect: allow, roles: [r], route: api }]\n",
    );
    let who = spiffe("spiffe://example.org/a");
    let ask = Ask::new(&p);
    assert!(ask.path(&who, "/anything").is_allowed());
    for bad in [
        "", "x", "/a//b", "/a/../b", "/./a", "/a?x=1", "/a#f", "/a\nb", "//",
    ] {
        let d = ask.path(&who, bad);
        assert!(!d.is_allowed(), "{bad:?}");
        assert_eq!(d.reason_code(), "invalid_path");
    }
    assert!(ask.path(&who, "/a/b/").is_allowed());
}

#[test]
fn explain_escapes_request_values() {
    let p = load(
        "revision: 1\nroles: {r: {}}\nbindings: [{ role: r, spiffe_id_prefix: \"spiffe://example.org\" }]\nrules: [{ id: a, effect: allow, roles: [r], route: api, path: \"/{x}\" }]\n",
    );
    let d = Ask::new(&p).path(&spiffe("spiffe://example.org/a"), "/a\u{85}b");
    assert!(d.is_allowed());
    assert_eq!(
        d.explain(),
        "allow by rule `a` with x=`a\\u{85}b`; roles [r]; revision `1`"
    );
    assert!(!d.explain().contains('\u{85}'));
}

#[test]
fn empty_policy_and_policy_without_rules_deny() {
    let who = admin();
    let empty = Policy::empty();
    assert_eq!(empty.revision(), "");
    assert_eq!(empty.rule_count(), 0);
    let d = Ask::new(&empty).path(&who, "/");
    assert!(!d.is_allowed());
    assert_eq!(d.reason_code(), "no_roles");
    let no_rules = load(
        "revision: 1\nroles: {r: {}}\nbindings: [{ role: r, spiffe_id_prefix: \"spiffe://example.org\" }]\n",
    );
    let d = Ask::new(&no_rules).path(&who, "/");
    assert!(!d.is_allowed());
    assert_eq!(d.reason_code(), "no_matching_rule");
    assert_eq!(d.roles().collect::<Vec<_>>(), ["r"]);
}

#[test]
fn decision_serialises_its_explanation() {
    let p = policy();
    let d = Ask::new(&p).path(&prod_web(), "/api/tenants/web");
    let v = serde_json::to_value(&d).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "allowed": true, "reason": "allow", "rule": "tenant-read",
            "params": {"tenant": "web"}, "roles": ["viewer"], "revision": "2026-12-04.1"
        })
    );
    let d = Ask::new(&p).path(&prod_web(), "/api/tenants/acme");
    let v = serde_json::to_value(&d).unwrap();
    assert_eq!(v["allowed"], false);
    assert_eq!(v["reason"], "condition_failed");
    assert_eq!(v["failed"]["condition"], "when.equal.tenant");
}

#[test]
fn summary_lists_effective_roles_and_rules() {
    let s = policy().summary();
    assert_eq!(s.revision, "2026-12-04.1");
    assert_eq!(s.rule_count, 7);
    assert_eq!(s.routes, ["api", "web"]);
    assert_eq!(s.deny_all, ["no-secrets"]);
    let role = |n: &str| s.roles.iter().find(|r| r.name == n).unwrap().clone();
    let admin = role("admin");
    assert_eq!(admin.inherits, ["editor"]);
    assert_eq!(admin.effective_roles, ["admin", "editor", "viewer"]);
    assert_eq!(
        admin.allow,
        ["tenant-read", "docs-read", "edit", "admin-all"]
    );
    assert_eq!(admin.deny, ["no-secrets", "editors-no-delete"]);
    let viewer = role("viewer");
    assert_eq!(viewer.effective_roles, ["viewer"]);
    assert_eq!(viewer.allow, ["tenant-read", "docs-read"]);
    assert_eq!(viewer.deny, ["no-secrets"]);
    assert_eq!(role("partner").allow, ["docs-read", "health"]);
    assert_eq!(
        s.roles.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["admin", "editor", "partner", "viewer"]
    );
    serde_json::to_string(&s).unwrap();
}

#[test]
fn request_is_copy_and_evaluation_is_repeatable() {
    let p = policy();
    let who = prod_web();
    let req = Request {
        principal: &who,
        route: "api",
        method: "GET",
        path: "/api/docs/a",
        source_ip: ip("10.0.0.1"),
        now: friday_10z(),
    };
    let a = p.evaluate(&req);
    let b = p.evaluate(&{ req });
    assert_eq!(a.explain(), b.explain());
}

#[test]
fn prefixes_of_several_depths_all_apply() {
    let p = load(
        r#"
revision: 1
roles: { td: {}, ns: {}, deep: {} }
bindings:
  - { role: td, spiffe_id_prefix: "spiffe://example.org" }
  - { role: ns, spiffe_id_prefix: "spiffe://example.org/ns/prod" }
  - { role: deep, spiffe_id_prefix: "spiffe://example.org/ns/prod/sa/web/v1" }
"#,
    );
    let roles = |id: &str| {
        p.roles_of(&spiffe(id))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(roles("spiffe://example.org"), ["td"]);
    assert_eq!(roles("spiffe://example.org/ns"), ["td"]);
    assert_eq!(roles("spiffe://example.org/ns/prod"), ["ns", "td"]);
    assert_eq!(roles("spiffe://example.org/ns/prod/sa/web"), ["ns", "td"]);
    assert_eq!(
        roles("spiffe://example.org/ns/prod/sa/web/v1"),
        ["deep", "ns", "td"]
    );
    assert_eq!(
        roles("spiffe://example.org/ns/prod/sa/web/v1/a/b/c"),
        ["deep", "ns", "td"]
    );
    assert_eq!(
        roles("spiffe://example.org/ns/prod/sa/web/v2"),
        ["ns", "td"]
    );
    assert!(roles("spiffe://example.com/ns/prod").is_empty());

    // Only a deep prefix: shallower IDs are skipped without lookups.
    let p = load(
        "revision: 1\nroles: { deep: {} }\nbindings: [{ role: deep, spiffe_id_prefix: \"spiffe://example.org/a/b/c\" }]\n",
    );
    assert_eq!(
        p.roles_of(&spiffe("spiffe://example.org/a/b/c/d")).count(),
        1
    );
    assert_eq!(p.roles_of(&spiffe("spiffe://example.org/a/b")).count(), 0);
    assert_eq!(
        p.roles_of(&spiffe("spiffe://example.org/a/b/x/d")).count(),
        0
    );
}
