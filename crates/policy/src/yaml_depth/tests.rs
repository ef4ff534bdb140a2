use super::*;

fn nested(n: usize) -> String {
    format!("roles: {}{}\n", "[".repeat(n), "]".repeat(n))
}

#[test]
fn nesting_up_to_the_bound_passes_and_beyond_it_is_refused_with_its_line() {
    assert_eq!(too_deep_flow_nesting(&nested(MAX_FLOW_NESTING)), None);
    assert_eq!(
        too_deep_flow_nesting(&nested(MAX_FLOW_NESTING + 1)),
        Some(1)
    );
    let text = format!("revision: 1\n# a comment\n{}", nested(100_000));
    assert_eq!(too_deep_flow_nesting(&text), Some(3));
    let deep_maps = format!("a: {}1{}\n", "{b: ".repeat(300), "}".repeat(300));
    assert_eq!(too_deep_flow_nesting(&deep_maps), Some(1));
}

#[test]
fn brackets_in_quotes_and_comments_do_not_count() {
    let many = "[".repeat(1000);
    for text in [
        format!("a: \"{many}\"\n"),
        format!("a: '{many}'\n"),
        format!("a: 'it''s {many}'\n"),
        format!("a: \"say \\\"{many}\"\n"),
        format!("a: 1 # {many}\nb: [x]\n"),
        format!("# {many}\n"),
        format!("a: [\"{many}\", '{many}']\n"),
    ] {
        assert_eq!(too_deep_flow_nesting(&text), None, "{text}");
    }
}

#[test]
fn a_quote_inside_a_plain_scalar_does_not_hide_what_follows() {
    // `don't` is a plain scalar: its quote opens nothing, so the brackets
    // after it still count.
    let text = format!("a: don't\nb: {}\n", nested(MAX_FLOW_NESTING + 1));
    assert_eq!(too_deep_flow_nesting(&text), Some(2));
    // A `#` inside a word is not a comment either.
    let text = format!("a: x#{}", "[".repeat(MAX_FLOW_NESTING + 1));
    assert_eq!(too_deep_flow_nesting(&text), Some(1));
}

#[test]
fn ordinary_policies_pass() {
    let text = "revision: 1\nroles: { reader: {}, writer: { inherits: [reader] } }\nrules:\n  - { id: a, effect: allow, roles: [reader], route: api, path: \"/api/**\", when: { claims: { groups: [a, b] } } }\n";
    assert_eq!(too_deep_flow_nesting(text), None);
}

#[test]
fn a_policy_nested_too_deep_is_refused_before_the_yaml_parser_sees_it() {
    // 80 000 levels took the parser 13 s to refuse.
    let text = format!("revision: 1\nroles: {}\n", nested(80_000));
    let start = std::time::Instant::now();
    let e = crate::Policy::from_yaml(&text).unwrap_err();
    assert!(
        e.to_string()
            .contains("nested more than 256 levels deep at line 2"),
        "{e}"
    );
    // Not a timing assertion of the scan's speed: a bound far above it
    // that the parser's quadratic time would exceed many times over.
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
}
