use super::*;

#[test]
fn plain_ascii_is_kept() {
    assert_eq!(echo("HS256"), "HS256");
    assert_eq!(echo("key 1"), "key 1");
}

#[test]
fn long_values_are_truncated() {
    let s = "a".repeat(MAX_ECHO_CHARS + 10);
    let e = echo(&s);
    assert_eq!(e, format!("{}...", "a".repeat(MAX_ECHO_CHARS)));
}

#[test]
fn exact_length_is_not_marked() {
    let s = "b".repeat(MAX_ECHO_CHARS);
    assert_eq!(echo(&s), s);
}

#[test]
fn control_and_non_ascii_are_escaped() {
    assert_eq!(echo("a\nb"), "a\\nb");
    assert_eq!(echo("x`y"), "x\\u{60}y");
    assert_eq!(echo("\\"), "\\\\");
    assert_eq!(echo("\u{202e}"), "\\u{202e}");
    assert_eq!(echo("\u{1b}[31m"), "\\u{1b}[31m");
}
