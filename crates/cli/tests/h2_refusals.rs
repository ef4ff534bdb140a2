//! HTTP/2 requests the protocol layer refuses before the gateway's
//! pipeline sees them: a malformed request head is reset by the HTTP/2
//! server, a frame no client may send ends the connection. Each is
//! counted, logged and audited like any refused request, and nothing is
//! forwarded. The client here writes raw frames (a conforming client
//! library would not send them).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions (clippy.toml allows these in tests)"
)]
mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PROTOCOL_ERROR: u32 = 0x1;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK "literal header field without indexing, new name", no Huffman
/// coding (RFC 7541 §6.2.2); names and values under 127 bytes.
fn literal(block: &mut Vec<u8>, name: &str, value: &str) {
    block.push(0x00);
    block.push(u8::try_from(name.len()).unwrap());
    block.extend_from_slice(name.as_bytes());
    block.push(u8::try_from(value.len()).unwrap());
    block.extend_from_slice(value.as_bytes());
}

/// A GET of `path` with `extra` fields, as one HEADERS frame ending the
/// stream.
fn get(stream: u32, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    literal(&mut block, ":method", "GET");
    literal(&mut block, ":scheme", "https");
    literal(&mut block, ":path", path);
    literal(&mut block, ":authority", "localhost");
    for (n, v) in extra {
        literal(&mut block, n, v);
    }
    frame(HEADERS, END_STREAM | END_HEADERS, stream, &block)
}

struct Frame {
    kind: u8,
    stream: u32,
    payload: Vec<u8>,
}

async fn read_frame(tls: &mut Tls) -> Option<Frame> {
    let mut head = [0u8; 9];
    tls.read_exact(&mut head).await.ok()?;
    let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
    let mut payload = vec![0u8; len];
    tls.read_exact(&mut payload).await.ok()?;
    Some(Frame {
        kind: head[3],
        stream: u32::from_be_bytes([head[5] & 0x7f, head[6], head[7], head[8]]),
        payload,
    })
}

/// Reads frames until `want` matches one (and returns it) or the
/// connection ends (`None`).
async fn until(tls: &mut Tls, mut want: impl FnMut(&Frame) -> bool) -> Option<Frame> {
    tokio::time::timeout(WAIT, async {
        while let Some(f) = read_frame(tls).await {
            if want(&f) {
                return Some(f);
            }
        }
        None
    })
    .await
    .expect("the gateway answered in time")
}

/// An HTTP/2 connection past the exchange of SETTINGS.
async fn connect(env: &TestEnv) -> Tls {
    let client = Client::h2(&env.pki, Some(&env.reader_cert));
    let mut tls = client.tls(env.gw.addr).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    tls.write_all(&hello).await.unwrap();
    until(&mut tls, |f| f.kind == SETTINGS && f.payload.len() % 6 == 0)
        .await
        .expect("the server's SETTINGS");
    tls.write_all(&frame(SETTINGS, 0x1, 0, &[])).await.unwrap();
    tls
}

fn code(f: &Frame) -> u32 {
    u32::from_be_bytes(f.payload[..4].try_into().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_http2_request_head_is_reset_counted_and_audited() {
    let env = TestEnv::start().await;
    let mut tls = connect(&env).await;
    // Connection-specific fields have no place in HTTP/2 (RFC 9113
    // §8.2.2): a `transfer-encoding` is how a request would be smuggled
    // past a proxy that downgrades to HTTP/1.1.
    let mut out = get(1, "/api/smuggle", &[("transfer-encoding", "chunked")]);
    out.extend(get(3, "/api/keepalive", &[("connection", "keep-alive")]));
    // A well-formed request on the same connection is still served.
    out.extend(get(5, "/api/fine", &[]));
    tls.write_all(&out).await.unwrap();

    let mut resets = Vec::new();
    let served = until(&mut tls, |f| {
        if f.kind == RST_STREAM {
            resets.push((f.stream, code(f)));
        }
        f.kind == HEADERS && f.stream == 5
    })
    .await;
    assert!(served.is_some(), "stream 5 answered");
    // Both resets are written before the answer to stream 5, which had to
    // go to the upstream and back.
    assert_eq!(resets, [(1, PROTOCOL_ERROR), (3, PROTOCOL_ERROR)]);

    let records = env.up.records();
    assert_eq!(records.len(), 1, "only the well-formed request forwarded");
    assert_eq!(records[0].target, "/api/fine");
    for stream in [1, 3] {
        let needle = format!("http/2 stream {stream} reset by the server with PROTOCOL_ERROR");
        let rec = env
            .gw
            .wait_audit_record(|r| reason_of(r).contains(&needle))
            .await;
        assert_eq!(rec["decision"], "deny", "{rec}");
        assert!(
            reason_of(&rec).starts_with("h2_stream_protocol_error: "),
            "{rec}"
        );
        assert_eq!(
            rec["source"].as_str().unwrap().split(':').next(),
            Some("127.0.0.1")
        );
    }
    env.gw
        .assert_bad_requests("h2_stream_protocol_error", 2)
        .await;
    env.assert_still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_frame_no_client_may_send_ends_the_connection_and_is_audited() {
    let env = TestEnv::start().await;
    let mut tls = connect(&env).await;
    // Streams a client opens have odd numbers (RFC 9113 §5.1.1), and DATA
    // needs an open stream: both are connection errors.
    let mut out = get(2, "/api/even", &[]);
    out.extend(frame(DATA, END_STREAM, 7, b"x"));
    tls.write_all(&out).await.unwrap();
    let goaway = until(&mut tls, |f| f.kind == GOAWAY)
        .await
        .expect("a GOAWAY");
    assert_eq!(
        u32::from_be_bytes(goaway.payload[4..8].try_into().unwrap()),
        PROTOCOL_ERROR
    );
    let rec = env
        .gw
        .wait_audit_record(|r| reason_of(r).starts_with("h2_connection_error"))
        .await;
    assert_eq!(rec["decision"], "deny", "{rec}");
    assert!(reason_of(&rec).contains("PROTOCOL_ERROR"), "{rec}");
    assert_eq!(env.up.count(), 0, "nothing forwarded");
    env.gw.assert_bad_requests("h2_connection_error", 1).await;
    env.assert_still_serving().await;
}

/// An HPACK string of any length: 7-bit prefix integer (RFC 7541 §5.1),
/// no Huffman coding.
fn string(block: &mut Vec<u8>, s: &str) {
    let mut n = s.len();
    if n < 127 {
        block.push(u8::try_from(n).unwrap());
    } else {
        block.push(127);
        n -= 127;
        while n >= 128 {
            block.push(u8::try_from(n % 128).unwrap() | 0x80);
            n /= 128;
        }
        block.push(u8::try_from(n).unwrap());
    }
    block.extend_from_slice(s.as_bytes());
}

/// A gateway whose listener takes 4 KiB of request headers: the HTTP/2
/// layer answers header lists over 8 KiB itself.
async fn small_headers() -> TestEnv {
    TestEnv::start_with(
        UpstreamBehaviour::default(),
        |c, _, _| with_listener_limits(&c, "{ max_header_bytes: 4096 }"),
        BASIC_POLICY,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_header_list_over_the_limit_is_431_counted_and_audited() {
    let env = small_headers().await;
    let mut tls = connect(&env).await;
    let mut out = Vec::new();
    // Over the limit, within what the HTTP/2 layer accepts (twice it):
    // the pipeline refuses it. Then far over: the HTTP/2 layer does.
    // Those with a body to come get a reset after the 431, the same
    // refusal; the server may write all the 431s first.
    let mut streams = vec![
        (1u32, 6_000usize, END_STREAM | END_HEADERS),
        (3, 12_000, END_STREAM | END_HEADERS),
    ];
    for s in (5..=45).step_by(2) {
        let flags = if s % 4 == 1 {
            END_HEADERS
        } else {
            END_STREAM | END_HEADERS
        };
        streams.push((s, 12_000, flags));
    }
    for (stream, size, flags) in &streams {
        out.extend(frame(HEADERS, *flags, *stream, &big_get(*stream, *size)));
    }
    tls.write_all(&out).await.unwrap();
    let with_body: Vec<u32> = streams
        .iter()
        .filter(|(_, _, f)| f & END_STREAM == 0)
        .map(|(s, _, _)| *s)
        .collect();
    assert_eq!(with_body.len(), 11);
    let (mut answered, mut reset) = (Vec::new(), Vec::new());
    until(&mut tls, |f| {
        match f.kind {
            HEADERS => answered.push(f.stream),
            RST_STREAM => reset.push(f.stream),
            _ => {}
        }
        answered.len() == streams.len() && reset.len() == with_body.len()
    })
    .await
    .expect("every stream answered, those with a body also reset");
    answered.sort_unstable();
    reset.sort_unstable();
    let all: Vec<u32> = streams.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(answered, all);
    assert_eq!(reset, with_body);
    assert_eq!(env.up.count(), 0, "nothing forwarded");

    // The pipeline's refusal, with the request's path...
    let rec = env.gw.wait_audit_record(|r| r["path"] == "/api/big1").await;
    assert_eq!(rec["status"], 431, "{rec}");
    assert!(reason_of(&rec).starts_with("header_too_large"), "{rec}");
    // ...and the protocol layer's, which never decoded the path.
    let rec = env
        .gw
        .wait_audit_record(|r| reason_of(r).contains("http/2 stream 3 answered 431"))
        .await;
    assert_eq!(rec["status"], 431, "{rec}");
    assert_eq!(rec["decision"], "deny", "{rec}");
    assert!(reason_of(&rec).starts_with("header_too_large: "), "{rec}");
    env.gw.assert_bad_requests("header_too_large", 23).await;
    env.gw
        .assert_bad_requests("h2_stream_protocol_error", 0)
        .await;
    env.assert_still_serving().await;
}

/// A GET of `/api/big{stream}` with a `size`-byte field.
fn big_get(stream: u32, size: usize) -> Vec<u8> {
    let mut block = Vec::new();
    literal(&mut block, ":method", "GET");
    literal(&mut block, ":scheme", "https");
    literal(&mut block, ":path", &format!("/api/big{stream}"));
    literal(&mut block, ":authority", "localhost");
    block.push(0x00);
    string(&mut block, "x-big");
    string(&mut block, &"b".repeat(size));
    block
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_keeps_sending_refused_streams_is_closed() {
    let env = small_headers().await;
    let mut tls = connect(&env).await;
    // 150 header lists the protocol layer answers 431 itself.
    let mut out = Vec::new();
    for i in 0..150u32 {
        let stream = 2 * i + 1;
        out.extend(frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            stream,
            &big_get(stream, 9_000),
        ));
    }
    // The gateway may close before it has read them all.
    let _ = tls.write_all(&out).await;
    // (The 431s written together with the 101st may still arrive.)
    let end = until(&mut tls, |_| false).await;
    assert!(end.is_none(), "the connection ends");
    let rec = env
        .gw
        .wait_audit_record(|r| reason_of(r).starts_with("h2_too_many_refusals"))
        .await;
    assert_eq!(rec["decision"], "deny", "{rec}");
    // Each of the first 100 was audited; none after them.
    env.gw.assert_bad_requests("header_too_large", 100).await;
    env.gw.assert_bad_requests("h2_too_many_refusals", 1).await;
    env.assert_still_serving().await;
}

/// What tells the gateway's own answers from the protocol layer's bare
/// 431: every response carries the request id, forwarded or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_http2_response_carries_a_request_id() {
    let env = TestEnv::start().await;
    let h2 = Client::h2(&env.pki, Some(&env.reader_cert));
    for path in [
        "/api/forwarded",
        "/.well-known/portcullis/jwks.json",
        "/api/admin/denied",
        "/nowhere",
    ] {
        let r = h2.get(env.gw.addr, path).await.unwrap();
        assert_eq!(r.version, http::Version::HTTP_2);
        let id = r.headers.get("x-portcullis-request-id").expect(path);
        assert_eq!(id.len(), 32, "{path}");
    }
    // No refusal was taken for the protocol layer's.
    let metrics = env.gw.metrics().await;
    assert_eq!(
        metric_value(&metrics, "portcullis_bad_requests_total"),
        0.0,
        "{metrics}"
    );
}

/// A response body that sends a little, waits, then fails with an HTTP/2
/// `PROTOCOL_ERROR`: the upstream resets its stream with that code once
/// the gateway has passed the response head on.
struct BrokenBody {
    sent: bool,
    wait: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for BrokenBody {
    type Data = bytes::Bytes;
    type Error = common::tls_upstream::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        if !std::mem::replace(&mut self.sent, true) {
            let data = bytes::Bytes::from_static(b"partial");
            return std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(data))));
        }
        std::task::ready!(std::future::Future::poll(self.wait.as_mut(), cx));
        let e = h2::Error::from(h2::Reason::PROTOCOL_ERROR);
        std::task::Poll::Ready(Some(Err(Box::new(e))))
    }
}

fn broken() -> http_body_util::combinators::BoxBody<bytes::Bytes, common::tls_upstream::BoxError> {
    http_body_util::BodyExt::boxed(BrokenBody {
        sent: false,
        wait: Box::pin(tokio::time::sleep(std::time::Duration::from_millis(300))),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstreams_protocol_error_is_not_blamed_on_the_client() {
    let (_dir, _tls, env) =
        common::tls_upstream::behind_tls_upstream_answering(true, |c| c, broken).await;
    let mut tls = connect(&env).await;
    tls.write_all(&get(1, "/api/broken", &[])).await.unwrap();
    let mut data = Vec::new();
    let reset = until(&mut tls, |f| {
        if f.kind == DATA {
            data.extend_from_slice(&f.payload);
        }
        f.kind == RST_STREAM && f.stream == 1
    })
    .await
    .expect("the stream is reset");
    assert_eq!(
        data, b"partial",
        "the head and the first bytes came through"
    );
    // The client did nothing wrong: the gateway failed to deliver.
    const INTERNAL_ERROR: u32 = 0x2;
    assert_eq!(code(&reset), INTERNAL_ERROR);
    let rec = env
        .gw
        .wait_audit_record(|r| r["decision"] == "error" && r["path"] == "/api/broken")
        .await;
    assert!(
        reason_of(&rec).starts_with("response_incomplete: upstream body: "),
        "{rec}"
    );
    env.gw
        .assert_bad_requests("h2_stream_protocol_error", 0)
        .await;
}
