//! `init_tracing` installs the process-wide subscriber, so it is tested in
//! its own process, apart from the unit tests that capture logs.

use portcullis_telemetry::{init_tracing, TracingInitError};

#[test]
fn installs_once_then_reports_already_set() {
    init_tracing("warn,portcullis_telemetry=debug").unwrap();
    let err = init_tracing("info").unwrap_err();
    assert!(matches!(err, TracingInitError::AlreadySet), "{err:?}");
    assert_eq!(
        err.to_string(),
        "a global tracing subscriber is already installed"
    );
}
