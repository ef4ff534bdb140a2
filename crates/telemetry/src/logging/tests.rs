use super::*;

#[test]
fn invalid_filter_is_rejected_with_the_filter_named() {
    let err = init_tracing("info,[unclosed").unwrap_err();
    assert!(matches!(err, TracingInitError::Filter { .. }), "{err:?}");
    assert_eq!(err.to_string(), "invalid log filter `info,[unclosed`");
}

#[test]
fn second_install_reports_already_set() {
    // The only test in this crate that installs the global subscriber.
    init_tracing("warn,portcullis_telemetry=debug").unwrap();
    let err = init_tracing("info").unwrap_err();
    assert!(matches!(err, TracingInitError::AlreadySet), "{err:?}");
}
