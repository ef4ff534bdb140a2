use super::*;

// Installing the global subscriber is tested in `tests/init_tracing.rs`:
// doing it here would race with the tests that capture logs.

#[test]
fn invalid_filter_is_rejected_with_the_filter_named() {
    let err = init_tracing("info,[unclosed").unwrap_err();
    assert!(matches!(err, TracingInitError::Filter { .. }), "{err:?}");
    assert_eq!(err.to_string(), "invalid log filter `info,[unclosed`");
}

#[test]
fn unknown_level_is_rejected() {
    let err = init_tracing("portcullis=loud").unwrap_err();
    assert!(matches!(err, TracingInitError::Filter { .. }), "{err:?}");
}
