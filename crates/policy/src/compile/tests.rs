use crate::test_util::{load, load_err};
use crate::{Policy, PolicyErrorKind, MAX_POLICY_BYTES, MAX_ROLES, MAX_RULES};

const ROLES: &str = "revision: 1\nroles:\n  viewer: {}\n  editor: { inherits: [viewer] }\n";

/// A policy with the standard roles and the given YAML rule lines
/// (flow mappings, one per line).
fn rules(lines: &[&str]) -> String {
    let mut s = format!("{ROLES}rules:\n");
    for l in lines {
        s.push_str("  - ");
        s.push_str(l);
        s.push('\n');
    }
    s
}

fn rule_err(rule: &str) -> String {
    load_err(&rules(&[rule]))
}

fn allow(extra: &str) -> String {
    format!("{{ id: r, effect: allow, roles: [viewer], route: api{extra} }}")
}

// ---- whole input ----

#[test]
fn empty_input_is_rejected() {
    assert_eq!(load_err(""), "input is empty");
    assert_eq!(load_err("  \n\n"), "input is empty");
    assert_eq!(load_err("# just a comment\n---\n"), "input is empty");
}

#[test]
fn input_over_the_size_limit_is_rejected() {
    let mut src = String::from("revision: 1\n");
    src.push_str(&"#".repeat(MAX_POLICY_BYTES));
    let err = Policy::from_yaml(&src).unwrap_err();
    assert_eq!(err.path(), "");
    assert!(
        matches!(err.kind(), PolicyErrorKind::TooLarge { max, .. } if *max == MAX_POLICY_BYTES)
    );
    assert!(err.to_string().starts_with("input is "), "{err}");
}

#[test]
fn more_rules_than_the_limit_is_rejected() {
    let mut src = format!("{ROLES}rules:\n");
    for i in 0..=MAX_RULES {
        src.push_str(&format!("- {{id: r{i}, effect: deny, route: a}}\n"));
    }
    let err = Policy::from_yaml(&src).unwrap_err();
    assert_eq!(err.path(), "rules");
    assert_eq!(
        err.to_string(),
        format!(
            "rules: {} rules is more than the limit of {MAX_RULES}",
            MAX_RULES + 1
        )
    );
}

#[test]
fn more_roles_than_the_limit_is_rejected() {
    let mut src = String::from("revision: 1\nroles:\n");
    for i in 0..=MAX_ROLES {
        src.push_str(&format!("  r{i}: {{}}\n"));
    }
    assert_eq!(
        load_err(&src),
        format!(
            "roles: {} roles is more than the limit of {MAX_ROLES}",
            MAX_ROLES + 1
        )
    );
}

#[test]
fn yaml_syntax_error_has_line_and_column() {
    let err = load_err("revision: 1\nrules: [ { id: x\n");
    assert!(err.contains("line 3 column 1"), "{err}");
    let err = load_err("revision: 1\n  bad indent: [\n");
    assert!(err.contains("line "), "{err}");
}

#[test]
fn several_documents_are_rejected() {
    let err = load_err("revision: 1\n---\nrevision: 2\n");
    assert!(err.contains("more than one document"), "{err}");
}

// ---- revision ----

#[test]
fn revision_is_required_and_may_be_string_or_integer() {
    assert_eq!(load_err("roles: {}\n"), "missing field `revision`");
    assert_eq!(load("revision: 42\n").revision(), "42");
    assert_eq!(
        load("revision: \"2026-12-04.1\"\n").revision(),
        "2026-12-04.1"
    );
    assert_eq!(load("revision: 2026-12-04.1\n").revision(), "2026-12-04.1");
    assert_eq!(load_err("revision: \"\"\n"), "revision: must not be empty");
    let err = load_err("revision: 1.5\n");
    assert!(
        err.starts_with(
            "revision: invalid type: floating point `1.5`, expected a string or an integer"
        ),
        "{err}"
    );
    let err = load_err("revision: [1]\n");
    assert!(err.starts_with("revision: invalid type: sequence"), "{err}");
}

// ---- unknown fields ----

#[test]
fn unknown_fields_are_rejected_everywhere() {
    let cases: Vec<(String, &str)> = vec![
        ("revision: 1\nrevison: 2\n".to_owned(), "revison"),
        (
            "revision: 1\nroles:\n  a: { inherit: [b] }\n".to_owned(),
            "roles.a.inherit",
        ),
        (
            "revision: 1\nroles: {a: {}}\nbindings:\n  - { role: a, spiffe: \"spiffe://x\" }\n"
                .to_owned(),
            "bindings[0].spiffe",
        ),
        (
            rules(&["{ id: r, effect: allow, roles: [viewer], route: api, method: GET }"]),
            "rules[0].method",
        ),
        (rules(&[&allow(", when: { ip: [] }")]), "rules[0].when.ip"),
        (
            rules(&[&allow(", when: { time: { days: [mon], zone: UTC } }")]),
            "rules[0].when.time.zone",
        ),
    ];
    for (src, path) in cases {
        let err = Policy::from_yaml(&src).unwrap_err();
        assert_eq!(err.path(), path, "{err}");
        assert!(err.to_string().contains("unknown field"), "{err}");
        assert!(err.to_string().contains("at line"), "{err}");
    }
}

#[test]
fn duplicate_keys_are_rejected() {
    let err = load_err("revision: 1\nroles:\n  a: {}\n  a: {}\n");
    assert_eq!(err, "roles: duplicate key `a` at line 3 column 3");
    let err = rule_err(&allow(
        ", path: \"/t/{t}\", when: { equal: { t: spiffe.id, t: spiffe.path } }",
    ));
    assert!(
        err.starts_with("rules[0].when.equal: duplicate key `t`"),
        "{err}"
    );
    let err = rule_err("{ id: r, id: s, effect: deny, route: api }");
    assert!(err.contains("duplicate field `id`"), "{err}");
}

// ---- JSON ----

const JSON_POLICY: &str = r#"{
  "revision": "j1",
  "roles": { "viewer": {}, "editor": { "inherits": ["viewer"] } },
  "bindings": [ { "role": "editor", "spiffe_id": "spiffe://example.org/ns/a/sa/w" } ],
  "rules": [ { "id": "r", "effect": "allow", "roles": ["viewer"], "route": "api",
               "methods": ["GET"], "path": "/t/{t}/**",
               "when": { "equal": { "t": "spiffe.segment[1]" } } } ]
}"#;

#[test]
fn a_json_policy_loads_with_the_same_meaning() {
    let p = load(JSON_POLICY);
    assert_eq!(p.revision(), "j1");
    let yaml = load(
        "revision: j1\nroles:\n  viewer: {}\n  editor: { inherits: [viewer] }\n\
         bindings:\n  - { role: editor, spiffe_id: \"spiffe://example.org/ns/a/sa/w\" }\n\
         rules:\n  - { id: r, effect: allow, roles: [viewer], route: api, methods: [GET], \
         path: \"/t/{t}/**\", when: { equal: { t: \"spiffe.segment[1]\" } } }\n",
    );
    assert_eq!(p.summary(), yaml.summary());
}

#[test]
fn json_duplicate_keys_are_rejected() {
    let err = load_err(r#"{"revision": 1, "roles": {"a": {}, "a": {}}}"#);
    assert!(err.starts_with("roles: duplicate key `a`"), "{err}");
    let err = load_err(r#"{"revision": 1, "revision": 2}"#);
    assert!(err.contains("duplicate field `revision`"), "{err}");
    let err = load_err(
        r#"{"revision": 1, "roles": {"v": {}}, "rules": [{"id": "r", "id": "s", "effect": "deny", "route": "api"}]}"#,
    );
    assert!(err.starts_with("rules[0]"), "{err}");
    assert!(err.contains("duplicate field `id`"), "{err}");
}

#[test]
fn json_of_the_wrong_shape_names_the_key_path() {
    let err = load_err(r#"{"revision": 1, "roles": {"v": {"inherits": "x"}}}"#);
    assert!(err.starts_with("roles.v.inherits: "), "{err}");
    assert!(err.contains("line 1"), "{err}");
    let err = load_err(r#"{"revision": 1, "rulez": []}"#);
    assert!(err.contains("unknown field `rulez`"), "{err}");
}

#[test]
fn a_yaml_flow_mapping_that_is_not_json_is_read_as_yaml() {
    let p = load("{revision: flow, roles: {viewer: {}}}");
    assert_eq!(p.revision(), "flow");
    // Invalid JSON and invalid YAML: the YAML parser's error.
    let err = load_err(r#"{"revision": "r"} trailing"#);
    assert!(err.contains("more than one document"), "{err}");
    let err = load_err(r#"{"revision": "r""#);
    assert!(!err.is_empty());
}

// ---- roles ----

#[test]
fn unknown_role_in_inherits_names_the_key_path() {
    let src = "revision: 1\nroles:\n  editor: {}\n  admin: { inherits: [editr] }\n";
    assert_eq!(
        load_err(src),
        "roles.admin.inherits[0]: unknown role `editr`"
    );
}

#[test]
fn inheritance_cycle_names_the_whole_cycle() {
    let src =
        "revision: 1\nroles:\n  admin: { inherits: [editor] }\n  editor: { inherits: [admin] }\n";
    assert_eq!(
        load_err(src),
        "roles: inheritance cycle `admin -> editor -> admin`"
    );

    let src = "revision: 1\nroles:\n  a: { inherits: [b] }\n  b: { inherits: [c] }\n  c: { inherits: [a] }\n  d: { inherits: [a] }\n";
    assert_eq!(load_err(src), "roles: inheritance cycle `a -> b -> c -> a`");

    let src = "revision: 1\nroles:\n  self: { inherits: [self] }\n";
    assert_eq!(load_err(src), "roles: inheritance cycle `self -> self`");

    // Reached through a role outside the cycle: only the cycle is named.
    let src = "revision: 1\nroles:\n  a: { inherits: [x] }\n  x: { inherits: [y] }\n  y: { inherits: [x] }\n";
    assert_eq!(load_err(src), "roles: inheritance cycle `x -> y -> x`");
}

#[test]
fn diamond_inheritance_is_not_a_cycle() {
    let src = "revision: 1\nroles:\n  a: { inherits: [b, c] }\n  b: { inherits: [d] }\n  c: { inherits: [d] }\n  d:\n";
    let p = load(src);
    let a = p
        .summary()
        .roles
        .into_iter()
        .find(|r| r.name == "a")
        .unwrap();
    assert_eq!(a.effective_roles, ["a", "b", "c", "d"]);
}

#[test]
fn long_inheritance_chain_loads() {
    let mut src = String::from("revision: 1\nroles:\n");
    let n = MAX_ROLES;
    for i in 0..n - 1 {
        src.push_str(&format!("  r{i}: {{ inherits: [r{}] }}\n", i + 1));
    }
    src.push_str(&format!("  r{}: {{}}\n", n - 1));
    let p = load(&src);
    let r0 = p
        .summary()
        .roles
        .into_iter()
        .find(|r| r.name == "r0")
        .unwrap();
    assert_eq!(r0.effective_roles.len(), n);
}

#[test]
fn role_names_must_be_plain() {
    assert_eq!(
        load_err("revision: 1\nroles:\n  \"a b\": {}\n"),
        "roles.a b: `a b` must not contain whitespace or control characters"
    );
    assert_eq!(
        load_err("revision: 1\nroles:\n  \"\": {}\n"),
        "roles.: must not be empty"
    );
}

// ---- bindings ----

const BINDING_ROLES: &str = "revision: 1\nroles: { viewer: {} }\nbindings:\n";

#[test]
fn binding_needs_exactly_one_selector() {
    let err = load_err(&format!("{BINDING_ROLES}  - {{ role: viewer }}\n"));
    assert_eq!(
        err,
        "bindings[0]: binding needs exactly one of `spiffe_id`, `spiffe_id_prefix`, `cert_subject`, `cert_issuer`, found 0"
    );
    let err = load_err(&format!(
        "{BINDING_ROLES}  - {{ role: viewer, cert_subject: \"CN=a\" }}\n  - {{ role: viewer, cert_subject: \"CN=a\", cert_issuer: \"CN=b\" }}\n"
    ));
    assert!(
        err.starts_with("bindings[1]: binding needs exactly one of"),
        "{err}"
    );
    assert!(err.ends_with("found 2"), "{err}");
}

#[test]
fn binding_unknown_role_is_rejected() {
    let err = load_err(&format!(
        "{BINDING_ROLES}  - {{ role: admin, cert_subject: \"CN=a\" }}\n"
    ));
    assert_eq!(err, "bindings[0].role: unknown role `admin`");
}

#[test]
fn binding_invalid_spiffe_ids_are_rejected() {
    let err = load_err(&format!(
        "{BINDING_ROLES}  - {{ role: viewer, spiffe_id: \"https://example.org/x\" }}\n"
    ));
    assert_eq!(
        err,
        "bindings[0].spiffe_id: invalid spiffe id `https://example.org/x`: scheme must be `spiffe://` (lowercase)"
    );
    let err = load_err(&format!(
        "{BINDING_ROLES}  - {{ role: viewer, spiffe_id_prefix: \"spiffe://example.org/ns/\" }}\n"
    ));
    assert!(
        err.starts_with(
            "bindings[0].spiffe_id_prefix: invalid spiffe id `spiffe://example.org/ns/`"
        ),
        "{err}"
    );
}

#[test]
fn binding_empty_subject_or_issuer_is_rejected() {
    let err = load_err(&format!(
        "{BINDING_ROLES}  - {{ role: viewer, cert_subject: \"\" }}\n"
    ));
    assert_eq!(err, "bindings[0].cert_subject: must not be empty");
    let err = load_err(&format!(
        "{BINDING_ROLES}  - {{ role: viewer, cert_issuer: \"\" }}\n"
    ));
    assert_eq!(err, "bindings[0].cert_issuer: must not be empty");
}

// ---- rules: identity and roles ----

#[test]
fn rule_ids_are_required_unique_and_non_empty() {
    let err = load_err(&rules(&[
        "{ id: a, effect: deny, route: api }",
        "{ id: b, effect: deny, route: api }",
        "{ id: a, effect: deny, route: api }",
    ]));
    assert_eq!(err, "rules[2].id: duplicate rule id `a`");
    assert_eq!(
        rule_err("{ id: \"\", effect: deny, route: api }"),
        "rules[0].id: must not be empty"
    );
    let err = rule_err("{ effect: deny, route: api }");
    assert!(err.starts_with("rules[0]: missing field `id`"), "{err}");
}

#[test]
fn effect_must_be_allow_or_deny() {
    let err = rule_err("{ id: a, effect: permit, route: api }");
    assert!(
        err.starts_with("rules[0].effect: unknown variant `permit`, expected `allow` or `deny`"),
        "{err}"
    );
}

#[test]
fn allow_rule_needs_roles() {
    assert_eq!(
        rule_err("{ id: a, effect: allow, route: api }"),
        "rules[0].roles: allow rule needs at least one role"
    );
    assert_eq!(
        rule_err("{ id: a, effect: allow, roles: [], route: api }"),
        "rules[0].roles: allow rule needs at least one role"
    );
}

#[test]
fn deny_rule_roles_may_be_absent_but_not_empty() {
    load(&rules(&["{ id: a, effect: deny, route: api }"]));
    assert_eq!(
        rule_err("{ id: a, effect: deny, roles: [], route: api }"),
        "rules[0].roles: must not be empty; omit `roles` to deny every principal"
    );
}

#[test]
fn unknown_role_in_rule_names_the_key_path() {
    assert_eq!(
        load_err(&rules(&[
            "{ id: a, effect: deny, route: api }",
            "{ id: b, effect: allow, roles: [viewer, admin], route: api }",
        ])),
        "rules[1].roles[1]: unknown role `admin`"
    );
}

// ---- rules: route ----

#[test]
fn route_or_routes_exactly_one() {
    assert_eq!(
        rule_err("{ id: a, effect: deny }"),
        "rules[0]: missing `route` (or `routes`)"
    );
    assert_eq!(
        rule_err("{ id: a, effect: deny, route: x, routes: [y] }"),
        "rules[0]: give either `route` or `routes`, not both"
    );
    assert_eq!(
        rule_err("{ id: a, effect: deny, routes: [] }"),
        "rules[0].routes: must not be empty"
    );
    assert_eq!(
        rule_err("{ id: a, effect: deny, routes: [x, \"\"] }"),
        "rules[0].routes[1]: must not be empty"
    );
    assert_eq!(
        rule_err("{ id: a, effect: deny, route: \"*\" }"),
        "rules[0].route: `*` is not a wildcard for routes; list the routes with `routes:`"
    );
}

#[test]
fn route_names_lists_every_route_once() {
    let p = load(&rules(&[
        "{ id: a, effect: deny, routes: [web, api] }",
        "{ id: b, effect: allow, roles: [viewer], route: api }",
        "{ id: c, effect: allow, roles: [viewer], route: admin }",
    ]));
    assert_eq!(p.route_names().collect::<Vec<_>>(), ["admin", "api", "web"]);
    assert_eq!(p.rule_count(), 3);
}

// ---- rules: methods ----

#[test]
fn bad_method_tokens_are_rejected() {
    assert_eq!(
        rule_err(&allow(", methods: [GET, get]")),
        "rules[0].methods[1]: invalid method `get`: methods are case-sensitive; write them in uppercase"
    );
    assert_eq!(
        rule_err(&allow(", methods: [\"GE T\"]")),
        "rules[0].methods[0]: invalid method `GE T`: not an HTTP method token"
    );
    assert_eq!(
        rule_err(&allow(", methods: [\"GET/\"]")),
        "rules[0].methods[0]: invalid method `GET/`: not an HTTP method token"
    );
    assert_eq!(
        rule_err(&allow(", methods: [\"\"]")),
        "rules[0].methods[0]: invalid method ``: must not be empty"
    );
    assert_eq!(
        rule_err(&allow(", methods: [GET, \"*\"]")),
        "rules[0].methods: `*` must be the only method"
    );
    assert_eq!(
        rule_err(&allow(", methods: []")),
        "rules[0].methods: must not be empty"
    );
    load(&rules(&[&allow(
        ", methods: [GET, HEAD, PROPFIND, M-SEARCH]",
    )]));
}

// ---- rules: path ----

#[test]
fn double_star_must_be_last() {
    let err = load_err(&rules(&[
        "{ id: a, effect: deny, route: api }",
        "{ id: b, effect: deny, route: api }",
        "{ id: c, effect: deny, route: api }",
        "{ id: d, effect: deny, route: api, path: \"/a/**/b\" }",
    ]));
    assert_eq!(err, "rules[3].path: `**` may only be the last segment");
}

#[test]
fn bad_patterns_are_rejected() {
    let cases = [
        ("api/x", "pattern `api/x` must start with `/`"),
        ("", "pattern `` must start with `/`"),
        ("/a/", "pattern `/a/` must not end with `/` (a trailing slash on a request is ignored)"),
        ("/a//b", "pattern `/a//b` has an empty segment"),
        ("/a/{}", "parameter name is empty (`{}`)"),
        ("/a/{1x}", "parameter name `1x` must be a letter or `_` followed by letters, digits or `_`"),
        ("/a/{x-y}", "parameter name `x-y` must be a letter or `_` followed by letters, digits or `_`"),
        ("/a/{x}/{x}", "duplicate path parameter `x`"),
        ("/a/x*", "segment `x*` mixes text with `{`, `}` or `*`; a wildcard must be a whole segment"),
        ("/a/{x}.json", "segment `{x}.json` mixes text with `{`, `}` or `*`; a wildcard must be a whole segment"),
        ("/a/../b", "segment `..` never matches a normalised path"),
        ("/a?x=1", "segment `a?x=1` holds `?`, `#`, whitespace or a control character, which never appear in a normalised path"),
    ];
    for (pattern, message) in cases {
        let err = rule_err(&format!(
            "{{ id: a, effect: deny, route: api, path: \"{pattern}\" }}"
        ));
        assert_eq!(
            err,
            format!("rules[0].path: {message}"),
            "pattern {pattern:?}"
        );
    }
}

#[test]
fn too_deep_pattern_is_rejected() {
    let deep = "/x".repeat(crate::MAX_PATTERN_SEGMENTS + 1);
    let err = rule_err(&format!(
        "{{ id: a, effect: deny, route: api, path: \"{deep}\" }}"
    ));
    assert_eq!(
        err,
        format!(
            "rules[0].path: {} path segments is more than the limit of {}",
            crate::MAX_PATTERN_SEGMENTS + 1,
            crate::MAX_PATTERN_SEGMENTS
        )
    );
}

// ---- rules: conditions ----

#[test]
fn equal_needs_a_path_parameter() {
    assert_eq!(
        rule_err(&allow(
            ", path: \"/t/{tenant}\", when: { equal: { tennant: \"spiffe.segment[1]\" } }"
        )),
        "rules[0].when.equal.tennant: path has no parameter `{tennant}`"
    );
    assert_eq!(
        rule_err(&allow(
            ", path: \"/t/*\", when: { equal: { tenant: spiffe.id } }"
        )),
        "rules[0].when.equal.tenant: path has no parameter `{tenant}`"
    );
}

#[test]
fn equal_needs_a_valid_attribute() {
    let err = rule_err(&allow(
        ", path: \"/t/{tenant}\", when: { equal: { tenant: spiffe.segment } }",
    ));
    assert!(
        err.starts_with(
            "rules[0].when.equal.tenant: invalid attribute `spiffe.segment`: unknown attribute"
        ),
        "{err}"
    );
    let err = rule_err(&allow(
        ", path: \"/t/{tenant}\", when: { equal: { tenant: \"spiffe.segment[x]\" } }",
    ));
    assert_eq!(
        err,
        "rules[0].when.equal.tenant: invalid attribute `spiffe.segment[x]`: spiffe.segment[N] needs a whole number N"
    );
}

#[test]
fn bad_cidrs_are_rejected() {
    assert_eq!(
        rule_err(&allow(", when: { source_ip: [\"10.0.0.0/8\", \"10.0.0.0/33\"] }")),
        "rules[0].when.source_ip[1]: invalid cidr `10.0.0.0/33`: expected an address or a network such as `10.0.0.0/8`"
    );
    assert_eq!(
        rule_err(&allow(", when: { source_ip: [\"example.org\"] }")),
        "rules[0].when.source_ip[0]: invalid cidr `example.org`: expected an address or a network such as `10.0.0.0/8`"
    );
    assert_eq!(
        rule_err(&allow(", when: { source_ip: [\"10.1.0.0/8\"] }")),
        "rules[0].when.source_ip[0]: invalid cidr `10.1.0.0/8`: host bits are set; did you mean `10.0.0.0/8`?"
    );
    assert_eq!(
        rule_err(&allow(", when: { source_ip: [\"2001:db8::1/32\"] }")),
        "rules[0].when.source_ip[0]: invalid cidr `2001:db8::1/32`: host bits are set; did you mean `2001:db8::/32`?"
    );
    assert_eq!(
        rule_err(&allow(", when: { source_ip: [] }")),
        "rules[0].when.source_ip: must not be empty"
    );
}

#[test]
fn too_many_cidrs_are_rejected() {
    let list: Vec<String> = (0..=crate::MAX_CIDRS_PER_RULE)
        .map(|i| format!("\"10.0.{}.{}\"", i / 256, i % 256))
        .collect();
    let err = rule_err(&allow(&format!(
        ", when: {{ source_ip: [{}] }}",
        list.join(", ")
    )));
    assert!(
        err.starts_with("rules[0].when.source_ip: 1025 networks is more than the limit"),
        "{err}"
    );
}

#[test]
fn unknown_time_zone_is_rejected() {
    assert_eq!(
        rule_err(&allow(
            ", when: { time: { days: [mon], tz: Europe/Berlinn } }"
        )),
        "rules[0].when.time.tz: unknown time zone `Europe/Berlinn`"
    );
}

#[test]
fn bad_times_are_rejected() {
    let msg = "expected HH:MM from 00:00 to 23:59 (`to` may be 24:00)";
    for (from, to, field, value) in [
        ("8:00", "18:00", "from", "8:00"),
        ("08:00", "18:60", "to", "18:60"),
        ("25:00", "18:00", "from", "25:00"),
        ("24:00", "18:00", "from", "24:00"),
        ("08:00", "24:01", "to", "24:01"),
        ("08-00", "18:00", "from", "08-00"),
        ("+8:00", "18:00", "from", "+8:00"),
    ] {
        let err = rule_err(&allow(&format!(
            ", when: {{ time: {{ from: \"{from}\", to: \"{to}\" }} }}"
        )));
        assert_eq!(
            err,
            format!("rules[0].when.time.{field}: invalid time `{value}`: {msg}")
        );
    }
    load(&rules(&[&allow(
        ", when: { time: { from: \"00:00\", to: \"24:00\" } }",
    )]));
}

#[test]
fn bad_day_names_are_rejected() {
    assert_eq!(
        rule_err(&allow(", when: { time: { days: [mon, monday] } }")),
        "rules[0].when.time.days[1]: invalid day `monday`: expected mon, tue, wed, thu, fri, sat or sun"
    );
    assert_eq!(
        rule_err(&allow(", when: { time: { days: [Mon] } }")),
        "rules[0].when.time.days[0]: invalid day `Mon`: expected mon, tue, wed, thu, fri, sat or sun"
    );
    assert_eq!(
        rule_err(&allow(", when: { time: { days: [] } }")),
        "rules[0].when.time.days: must not be empty"
    );
}

#[test]
fn time_window_shape_is_checked() {
    assert_eq!(
        rule_err(&allow(", when: { time: { from: \"08:00\" } }")),
        "rules[0].when.time: `from` and `to` must be given together"
    );
    assert_eq!(
        rule_err(&allow(
            ", when: { time: { from: \"08:00\", to: \"08:00\" } }"
        )),
        "rules[0].when.time: `from` and `to` must differ"
    );
    assert_eq!(
        rule_err(&allow(", when: { time: { tz: UTC } }")),
        "rules[0].when.time: time window needs `days`, `from` and `to`, or both"
    );
}

#[test]
fn rules_accept_every_documented_key() {
    let p = load(&rules(&[
        "{ id: full, effect: allow, roles: [viewer, editor], routes: [api, web], methods: [GET, HEAD], path: \"/t/{tenant}/*/**\", description: all keys, when: { source_ip: [\"10.0.0.0/8\", \"2001:db8::/32\", \"192.0.2.7\"], time: { days: [mon, fri], from: \"22:00\", to: \"06:00\", tz: Europe/Berlin }, equal: { tenant: \"spiffe.segment[1]\" } } }",
    ]));
    let s = p.summary();
    let r = &s.rules[0];
    assert_eq!(r.id, "full");
    assert_eq!(r.roles, ["editor", "viewer"]);
    assert_eq!(r.routes, ["api", "web"]);
    assert_eq!(r.methods, ["GET", "HEAD"]);
    assert_eq!(r.path, "/t/{tenant}/*/**");
    assert_eq!(
        r.conditions,
        ["when.source_ip", "when.time", "when.equal.tenant"]
    );
}

#[test]
fn empty_sections_are_allowed() {
    let p = load("revision: 1\nroles:\nbindings:\nrules:\n");
    assert_eq!(p.rule_count(), 0);
    let p = load("revision: 1\nroles: {}\nbindings: []\nrules: []\n");
    assert_eq!(p.route_names().count(), 0);
}

#[test]
fn yaml_alias_bombs_are_refused() {
    let mut src = String::from("revision: 1\nx0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n");
    for i in 1..10 {
        let prev = i - 1;
        src.push_str(&format!(
            "x{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
        ));
    }
    // Fails (unknown field or repetition limit) without expanding 9^10 nodes.
    let err = load_err(&src);
    assert!(
        err.contains("unknown field") || err.contains("repetition limit"),
        "{err}"
    );
    let bomb_in_rules = format!(
        "revision: 1\nroles: {{ r: {{}} }}\nrules: &x [{}]\n",
        "{ id: a, effect: deny, route: r }, ".repeat(10)
    );
    assert!(load_err(&bomb_in_rules).contains("duplicate rule id"));
}

#[test]
fn deep_nesting_is_refused() {
    let src = format!(
        "revision: 1\nroles: {}{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let err = load_err(&src);
    assert_eq!(
        err,
        "flow collections (`[`, `{`) nested more than 256 levels deep at line 2",
    );
}

#[test]
fn a_certificate_name_in_a_binding_must_be_written_as_the_verifier_writes_it() {
    let with = |binding: &str| {
        format!(
            "revision: 1\nroles: {{ ops: {{}} }}\nbindings:\n  - {{ role: ops, {binding} }}\nrules: []\n"
        )
    };
    let e = load_err(&with(r#"cert_subject: "CN=alice, O=Example""#));
    assert!(
        e.contains("bindings[0].cert_subject") && e.contains("space"),
        "{e}"
    );
    let e = load_err(&with(r#"cert_issuer: "cn=Dev CA""#));
    assert!(
        e.contains("bindings[0].cert_issuer") && e.contains("did you mean `CN`"),
        "{e}"
    );
    load(&with(r#"cert_subject: "CN=alice,O=Example""#));
}
