//! End to end over real sockets: request smuggling, ambiguous targets and
//! path attacks, sent as exact HTTP/1.1 bytes over TLS with a valid writer
//! certificate (so a request that slipped through would be allowed and
//! forwarded). Every refused request gets exactly one answer, reaches no
//! upstream, is counted and audited, and the gateway keeps serving.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions (clippy.toml allows these in tests)"
)]
mod common;

use common::{raw_statuses, TestEnv};

/// The metric series of `portcullis_bad_requests_total` for `reason`.
fn bad_requests(reason: &str) -> String {
    format!(r#"portcullis_bad_requests_total{{reason="{reason}"}}"#)
}

/// Sends `bytes` as the writer and checks the refusal: exactly one
/// response with `status`, nothing forwarded, the bad-request counter for
/// `reason` up by one, a deny audit record with that reason, and the
/// gateway still serving.
async fn assert_refused(bytes: &str, status: u16, reason: &str) {
    let env = TestEnv::start().await;
    let series = bad_requests(reason);
    let before = env.gw.metric(&series).await;
    let resp = env
        .writer
        .raw(env.gw.addr, bytes.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{bytes:?}: {e}"));
    assert_eq!(raw_statuses(&resp), [status], "{bytes:?} -> {resp}");
    assert_eq!(env.up.count(), 0, "{bytes:?} was forwarded");
    assert_eq!(
        env.gw.wait_metric_at_least(&series, before + 1.0).await,
        before + 1.0,
        "{bytes:?}: {series}"
    );
    let prefix = format!("{reason}:");
    let audit = env
        .gw
        .wait_audit_where(|a| a["reason"].as_str().is_some_and(|r| r.starts_with(&prefix)))
        .await;
    let rec = audit
        .iter()
        .find(|a| a["reason"].as_str().is_some_and(|r| r.starts_with(&prefix)))
        .unwrap_or_else(|| panic!("{bytes:?}: no audit record with reason {reason}: {audit:?}"));
    assert_eq!(rec["decision"], "deny");
    // The status the client got, also for requests refused by the parser
    // before the gateway's pipeline.
    assert_eq!(rec["status"], status, "{rec}");
    env.assert_still_serving().await;
}

macro_rules! refused {
    ($(#[$doc:meta])* $name:ident, $bytes:expr, $status:expr, $reason:expr) => {
        $(#[$doc])*
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            assert_refused($bytes, $status, $reason).await;
        }
    };
}

// ------------------------------------------------------------ framing

// hyper's HTTP/1 parser removes `Content-Length` from a request that also
// has `Transfer-Encoding`, and folds equal duplicate `Content-Length`
// fields into one, before the gateway sees the request. The listener
// therefore judges the framing of every request head on the raw bytes of
// the connection, and the gateway refuses both cases before anything
// else, with `Connection: close`.

refused!(
    /// CL.TE: the front end and the upstream disagree on the body's end.
    content_length_with_transfer_encoding_is_refused,
    "POST /api/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    400,
    "te_and_cl"
);
refused!(
    /// TE.CL: the same with the fields in the other order.
    transfer_encoding_with_content_length_is_refused,
    "POST /api/x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    400,
    "te_and_cl"
);
refused!(
    /// Field names in any case, a coding list ending in `chunked`.
    content_length_with_transfer_encoding_in_other_spellings_is_refused,
    "POST /api/x HTTP/1.1\r\nHost: localhost\r\ncontent-length: 5\r\nTRANSFER-ENCODING: gzip, chunked\r\n\r\n0\r\n\r\n",
    400,
    "te_and_cl"
);
refused!(
    /// Bare LF line endings, which hyper's parser accepts.
    content_length_with_transfer_encoding_and_bare_lf_is_refused,
    "POST /api/x HTTP/1.1\nHost: localhost\nTransfer-Encoding: chunked\nContent-Length: 5\n\n0\r\n\r\n",
    400,
    "te_and_cl"
);

/// CL+TE (either order) with a body that `Content-Length: 3` would cut
/// short and a request pipelined behind it: one 400 that closes the
/// connection, and nothing reaches the upstream, neither the request nor
/// the one behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_with_transfer_encoding_closes_the_connection_and_forwards_nothing() {
    let env = TestEnv::start().await;
    let smuggled = "GET /api/smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let heads = [
        "Content-Length: 3\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 3",
    ];
    for head in heads {
        let raw = format!(
            "POST /api/cl-te HTTP/1.1\r\nHost: localhost\r\n{head}\r\n\r\n5\r\nhello\r\n0\r\n\r\n{smuggled}"
        );
        let resp = env.writer.raw(env.gw.addr, raw.as_bytes()).await.unwrap();
        assert_eq!(raw_statuses(&resp), [400], "{head:?} -> {resp}");
        assert!(
            resp.to_ascii_lowercase()
                .contains("\r\nconnection: close\r\n"),
            "{head:?}: connection kept open: {resp}"
        );
        assert_eq!(env.up.count(), 0, "{head:?}: {:?}", env.up.records());
    }
    env.assert_still_serving().await;
}

refused!(
    /// hyper's parser refuses differing lengths before the gateway sees them.
    two_different_content_lengths,
    "POST /api/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    400,
    "malformed_request"
);
refused!(
    /// Two equal `Content-Length` fields, which hyper folds into one: the
    /// gateway refuses them (RFC 9110 §8.6 allows either), and the request
    /// pipelined behind is never read.
    two_equal_content_lengths_are_refused,
    "POST /api/twice HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello\
     GET /api/next HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    400,
    "duplicate_content_length"
);
refused!(
    /// Equal lengths in different spellings are still two fields.
    two_equal_content_lengths_spelt_differently_are_refused,
    "POST /api/x HTTP/1.1\r\nHost: localhost\r\ncontent-length: 5\r\nCONTENT-LENGTH: 005\r\n\r\nhello",
    400,
    "duplicate_content_length"
);

/// Clean requests pipelined in one write, with bodies framed each way,
/// are all served in order: the framing check follows the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_with_clean_framing_are_all_served() {
    let env = TestEnv::start().await;
    let raw = "POST /api/one HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello\
               POST /api/two HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
               3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n\
               \r\n\
               GET /api/three HTTP/1.1\r\nHost: localhost\r\n\r\n\
               GET /api/four HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let resp = env.writer.raw(env.gw.addr, raw.as_bytes()).await.unwrap();
    assert_eq!(raw_statuses(&resp), [200, 200, 200, 200], "{resp}");
    let records = env.up.records();
    let seen: Vec<(&str, &[u8])> = records
        .iter()
        .map(|r| (r.target.as_str(), r.body.as_ref()))
        .collect();
    assert_eq!(
        seen,
        [
            ("/api/one", &b"hello"[..]),
            ("/api/two", b"abcde"),
            ("/api/three", b""),
            ("/api/four", b"")
        ]
    );
    assert!(!env
        .gw
        .metrics()
        .await
        .contains("portcullis_bad_requests_total{"));
}

refused!(
    /// hyper's parser refuses a list value before the gateway sees it.
    content_length_list,
    "POST /api/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5, 5\r\n\r\nhello",
    400,
    "malformed_request"
);
refused!(
    content_length_with_plus_sign,
    "POST /api/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: +5\r\n\r\nhello",
    400,
    "malformed_request"
);
refused!(
    /// hyper accepts a coding list ending in `chunked`; the gateway does
    /// not implement other codings (501, RFC 9112 §6.1).
    transfer_encoding_gzip_chunked,
    "POST /api/x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    501,
    "bad_transfer_encoding"
);
refused!(
    transfer_encoding_chunked_twice,
    "POST /api/x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    501,
    "bad_transfer_encoding"
);
refused!(
    /// Whitespace between the field name and the colon (RFC 9112 §5.1).
    transfer_encoding_space_before_colon,
    "POST /api/x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    400,
    "malformed_request"
);
refused!(
    transfer_encoding_xchunked,
    "POST /api/x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    400,
    "malformed_request"
);
refused!(
    transfer_encoding_on_http10,
    "POST /api/x HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    400,
    "malformed_request"
);

// ------------------------------------------------------ target and host

refused!(
    absolute_form_with_a_different_authority,
    "GET https://evil.example/api/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    400,
    "host_mismatch"
);
refused!(
    connect_is_refused,
    "CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n",
    400,
    "authority_form"
);
refused!(
    options_asterisk_is_refused,
    "OPTIONS * HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    400,
    "asterisk_form"
);
refused!(
    missing_host,
    "GET /api/x HTTP/1.1\r\nConnection: close\r\n\r\n",
    400,
    "missing_host"
);
refused!(
    two_host_headers,
    "GET /api/x HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    400,
    "duplicate_host"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_form_that_agrees_with_host_is_served() {
    let env = TestEnv::start().await;
    let resp = env
        .writer
        .raw(
            env.gw.addr,
            b"GET https://localhost/api/./abs?x=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    assert_eq!(raw_statuses(&resp), [200], "{resp}");
    let records = env.up.records();
    assert_eq!(records.len(), 1);
    // Origin-form upstream, built from the judged path.
    assert_eq!(records[0].target, "/api/abs?x=1");
    assert_eq!(records[0].headers["host"], "localhost");
}

// ---------------------------------------------------------- path attacks

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
}

refused!(
    dot_dot_semicolon,
    &get("/api/..;/admin"),
    400,
    "path_parameter"
);
refused!(path_parameter, &get("/api;x/admin"), 400, "path_parameter");
refused!(encoded_slash, &get("/api/%2fadmin"), 400, "encoded_slash");
refused!(encoded_backslash, &get("/api/%5cadmin"), 400, "backslash");
refused!(raw_backslash, &get("/api\\admin"), 400, "backslash");
refused!(encoded_nul, &get("/api/%00"), 400, "control_char");
refused!(
    invalid_escape,
    &get("/api/x%zz"),
    400,
    "bad_percent_encoding"
);
refused!(dot_dot_at_root, &get("/.."), 400, "above_root");
refused!(
    dot_dot_above_root,
    &get("/api/../../etc"),
    400,
    "above_root"
);
refused!(
    encoded_dot_dot_above_root,
    &get("/%2e%2e/api/x"),
    400,
    "above_root"
);

/// `%2e%2e` is `..` (rule 4) and is then removed as a dot segment
/// (rule 6): `/api/%2e%2e/admin` is judged, and would be forwarded, as
/// `/admin`, which no route serves. It is not a malformed request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_dot_dot_inside_the_tree_is_resolved_before_routing() {
    let env = TestEnv::start().await;
    let resp = env
        .writer
        .raw(env.gw.addr, get("/api/%2e%2e/admin").as_bytes())
        .await
        .unwrap();
    assert_eq!(raw_statuses(&resp), [404], "{resp}");
    assert_eq!(env.up.count(), 0);
    let audit = env.gw.wait_audit_where(|a| a["status"] == 404).await;
    let rec = audit.iter().find(|a| a["status"] == 404).unwrap();
    assert_eq!(rec["path"], "/admin");
    assert!(
        rec["reason"].as_str().unwrap().starts_with("no_route:"),
        "{rec}"
    );
    assert!(!env
        .gw
        .metrics()
        .await
        .contains("portcullis_bad_requests_total{"));

    // Inside the route, the policy judges the resolved path: the deny on
    // `/api/admin/**` applies to the dotted spelling too.
    let resp = env
        .writer
        .raw(env.gw.addr, get("/api/x/%2E%2e/admin/secret").as_bytes())
        .await
        .unwrap();
    assert_eq!(raw_statuses(&resp), [403], "{resp}");
    assert_eq!(env.up.count(), 0);
    let audit = env.gw.wait_audit_where(|a| a["status"] == 403).await;
    let rec = audit.iter().find(|a| a["status"] == 403).unwrap();
    assert_eq!(rec["path"], "/api/admin/secret");
    assert_eq!(rec["rule"], "no-admin");
}

// -------------------------------------------------------------- pipelining

/// A request pipelined behind a smuggling attempt on the same connection
/// is never read as a request: the gateway answers once and closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_request_after_a_smuggling_attempt_never_reaches_the_upstream() {
    let env = TestEnv::start().await;
    let smuggled = "GET /api/smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n";
    // (attempt, status): transfer codings the gateway does not implement
    // are answered 501, every other attempt 400.
    let attempts = [
        // CL.TE: a front end using Content-Length would end the body
        // early and read `GET /api/smuggled` as the next request.
        ("POST /api/a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("POST /api/b HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 50\r\n\r\n0\r\n\r\n", 400),
        ("POST /api/c HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
        ("POST /api/d HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
        ("POST /api/e HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n", 400),
        ("POST /api/f HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400),
        ("POST /api/g HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5, 0\r\n\r\n", 400),
        ("GET /api/..;/h HTTP/1.1\r\nHost: localhost\r\n\r\n", 400),
        ("GET https://evil.example/api/i HTTP/1.1\r\nHost: localhost\r\n\r\n", 400),
        // Equal duplicate lengths, which hyper would fold into one.
        ("POST /api/j HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n", 400),
    ];
    for (attempt, status) in attempts {
        let before = env.up.count();
        let resp = env
            .writer
            .raw(env.gw.addr, format!("{attempt}{smuggled}").as_bytes())
            .await
            .unwrap();
        // One answer: the pipelined request was never read.
        assert_eq!(raw_statuses(&resp), [status], "{attempt:?} -> {resp}");
        let records = env.up.records();
        assert_eq!(records.len(), before, "{attempt:?}: {records:?}");
    }
    env.assert_still_serving().await;
}
