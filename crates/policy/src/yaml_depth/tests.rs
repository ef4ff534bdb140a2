use super::*;

fn nested(n: usize) -> String {
    format!("{}{}", "[".repeat(n), "]".repeat(n))
}

#[test]
fn nesting_up_to_the_bound_passes_and_beyond_it_is_refused_with_its_line() {
    let roles = |n| format!("roles: {}\n", nested(n));
    assert_eq!(too_deep_flow_nesting(&roles(MAX_FLOW_NESTING)), None);
    assert_eq!(
        too_deep_flow_nesting(&roles(MAX_FLOW_NESTING + 1)),
        Some(TooDeep { line: 1 })
    );
    let text = format!("revision: 1\n# a comment\n{}", roles(100_000));
    assert_eq!(too_deep_flow_nesting(&text), Some(TooDeep { line: 3 }));
    let deep_maps = format!("a: {}1{}\n", "{b: ".repeat(300), "}".repeat(300));
    assert_eq!(too_deep_flow_nesting(&deep_maps), Some(TooDeep { line: 1 }));
}

#[test]
fn a_quote_or_a_comment_does_not_hide_what_follows() {
    // In each of these the YAML parser nests the brackets after the quote
    // or `#`: the quote is part of a plain scalar (`a 'b`, `it 's`) or of
    // a block scalar, and `x#` is no comment. A scan that skipped "quoted"
    // text would let them through to the parser.
    let deep = nested(MAX_FLOW_NESTING + 1);
    for text in [
        format!("roles: [a 'b, {deep}]\n"),
        format!("note: it 's\nroles: {deep}\n"),
        format!("note: |\n  'quoted\nroles: {deep}\n"),
        format!("a: x#{deep}\n"),
    ] {
        assert!(too_deep_flow_nesting(&text).is_some(), "{text}");
    }
}

#[test]
fn balanced_brackets_in_text_are_harmless() {
    let text = "a: \"[[x]]\"\nb: '{y}' # [z]\nc: [1, [2, {d: [3]}]]\n";
    assert_eq!(too_deep_flow_nesting(text), None);
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
