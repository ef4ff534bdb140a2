//! The idle release of an HTTP/1 connection's [`FramingTap`]: it reports
//! the end of the stream to hyper only between requests, with nothing
//! unflushed, after [`HTTP1_IDLE_RELEASE`] without activity.

use std::future::poll_fn;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;

fn tap(inner: DuplexStream) -> FramingTap<DuplexStream> {
    FramingTap {
        inner,
        scanner: Http1FramingScanner::new(),
        verdicts: Arc::new(FramingVerdicts::default()),
        activity: Arc::new(Activity::default()),
        unflushed: false,
        last_active: tokio::time::Instant::now(),
        release_timer: None,
        released: false,
        decoded: false,
        header_read_timeout: HEADER_READ,
        head: Deadline::default(),
        send_timeout: SEND_TIMEOUT,
        write: Deadline::default(),
    }
}

const HEADER_READ: Duration = Duration::from_millis(300);
const SEND_TIMEOUT: Duration = Duration::from_millis(300);

/// One read attempt: `Some(bytes read)` when ready (0: end of stream).
async fn try_read(t: &mut FramingTap<DuplexStream>) -> Option<usize> {
    let mut buf = [0u8; 256];
    poll_fn(|cx| {
        let mut rb = ReadBuf::new(&mut buf);
        match Pin::new(&mut *t).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => Poll::Ready(Some(rb.filled().len())),
            Poll::Ready(Err(e)) => panic!("read failed: {e}"),
            Poll::Pending => Poll::Ready(None),
        }
    })
    .await
}

fn idle_for_longer_than_the_release(t: &mut FramingTap<DuplexStream>) {
    t.last_active = tokio::time::Instant::now() - HTTP1_IDLE_RELEASE * 2;
}

#[tokio::test]
async fn an_idle_connection_is_released_after_the_release_time() {
    let (client, server) = tokio::io::duplex(4096);
    let mut t = tap(server);
    // Just active: not yet.
    assert_eq!(try_read(&mut t).await, None);
    assert!(!t.released);
    // The armed timer wakes the connection once the time has passed.
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), t.read(&mut buf))
        .await
        .expect("woken by the release timer")
        .unwrap();
    assert_eq!(n, 0, "end of stream reported to hyper");
    assert!(t.released);
    assert!(started.elapsed() >= HTTP1_IDLE_RELEASE - Duration::from_millis(5));
    // Once released, hyper keeps seeing the end until the stream is
    // taken back; the client's bytes stay in the stream meanwhile.
    drop(client);
}

#[tokio::test]
async fn no_release_while_a_request_is_in_flight() {
    let (_client, server) = tokio::io::duplex(4096);
    let mut t = tap(server);
    idle_for_longer_than_the_release(&mut t);
    let guard = InFlight::track(&t.activity, std::future::ready(()));
    assert_eq!(try_read(&mut t).await, None);
    assert!(!t.released);
    drop(guard);
    assert_eq!(try_read(&mut t).await, Some(0));
    assert!(t.released);
}

#[tokio::test]
async fn no_release_inside_a_request_head_or_body() {
    let (mut client, server) = tokio::io::duplex(4096);
    let mut t = tap(server);
    client
        .write_all(b"POST /a HTTP/1.1\r\nContent-Length: 4\r\n\r\nab")
        .await
        .unwrap();
    assert!(try_read(&mut t).await.unwrap() > 0);
    idle_for_longer_than_the_release(&mut t);
    assert_eq!(try_read(&mut t).await, None, "half a body read");
    client.write_all(b"cd").await.unwrap();
    assert_eq!(try_read(&mut t).await, Some(2));
    idle_for_longer_than_the_release(&mut t);
    assert_eq!(try_read(&mut t).await, Some(0), "whole message read");

    let (mut client, server) = tokio::io::duplex(4096);
    let mut t = tap(server);
    client.write_all(b"GET /a HTTP/1.1\r\nHo").await.unwrap();
    assert!(try_read(&mut t).await.unwrap() > 0);
    idle_for_longer_than_the_release(&mut t);
    assert_eq!(try_read(&mut t).await, None, "half a head read");
}

#[tokio::test]
async fn no_release_with_a_response_not_yet_flushed() {
    let (mut client, server) = tokio::io::duplex(4096);
    let mut t = tap(server);
    t.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
    assert!(t.unflushed);
    idle_for_longer_than_the_release(&mut t);
    assert_eq!(try_read(&mut t).await, None);
    t.flush().await.unwrap();
    assert!(!t.unflushed);
    // The flush counts as activity: the release comes a full release
    // time later, woken by the timer the flush armed.
    assert_eq!(try_read(&mut t).await, None);
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), t.read(&mut buf))
        .await
        .expect("woken by the release timer")
        .unwrap();
    assert_eq!(n, 0);
    let mut got = vec![0u8; 19];
    client.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"HTTP/1.1 200 OK\r\n\r\n");
}

#[tokio::test]
async fn bytes_from_the_client_are_read_not_released() {
    let (mut client, server) = tokio::io::duplex(4096);
    let mut t = tap(server);
    idle_for_longer_than_the_release(&mut t);
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(try_read(&mut t).await, Some(27));
    assert!(!t.released);
    assert_eq!(t.verdicts.lock().len(), 1, "the head was judged");
}

/// A tap whose client has sent `bytes`.
async fn tap_with(bytes: &[u8]) -> (DuplexStream, FramingTap<DuplexStream>) {
    let (mut client, server) = tokio::io::duplex(4096);
    client.write_all(bytes).await.unwrap();
    (client, tap(server))
}

/// Reads until the tap reports something: bytes, the end, or an error.
async fn read_outcome(t: &mut FramingTap<DuplexStream>) -> io::Result<usize> {
    let mut buf = [0u8; 256];
    tokio::time::timeout(Duration::from_secs(5), t.read(&mut buf))
        .await
        .expect("the tap reports within 5 s")
}

#[tokio::test]
async fn a_head_that_arrives_in_one_read_sets_no_deadline() {
    let (_client, mut t) = tap_with(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(read_outcome(&mut t).await.unwrap() > 0);
    assert!(!t.head.is_set());
    assert!(t.head.timer.is_none(), "no timer was made");
}

#[tokio::test]
async fn an_unfinished_head_ends_the_connection_after_header_read() {
    let (_client, mut t) = tap_with(b"GET /a HTTP/1.1\r\nHo").await;
    assert!(read_outcome(&mut t).await.unwrap() > 0);
    assert!(t.head.is_set());
    let started = tokio::time::Instant::now();
    let err = read_outcome(&mut t).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert_eq!(
        err.get_ref().and_then(|e| e.downcast_ref()),
        Some(&Slow::Head)
    );
    let took = started.elapsed();
    assert!(
        took >= HEADER_READ - Duration::from_millis(50) && took < HEADER_READ * 4,
        "{took:?}"
    );
}

#[tokio::test]
async fn a_head_finished_in_time_clears_its_deadline_and_a_body_has_none() {
    let (mut client, mut t) = tap_with(b"POST /a HTTP/1.1\r\nHost: x\r\n").await;
    read_outcome(&mut t).await.unwrap();
    assert!(t.head.is_set());
    client
        .write_all(b"Content-Length: 10\r\n\r\n12345")
        .await
        .unwrap();
    read_outcome(&mut t).await.unwrap();
    assert!(!t.head.is_set(), "in the body: no head deadline");
    // A slow body is not the head's business: no error after the
    // head's timeout (bodies have their own stall timeout).
    tokio::time::sleep(HEADER_READ * 2).await;
    assert_eq!(try_read(&mut t).await, None);
}

#[tokio::test]
async fn a_second_head_begun_in_the_same_read_gets_its_own_deadline() {
    let (mut client, mut t) = tap_with(b"GET /a HTTP/1.1\r\nHo").await;
    read_outcome(&mut t).await.unwrap();
    let first = t.head.at.expect("a deadline for the first head");
    tokio::time::sleep(Duration::from_millis(100)).await;
    client
        .write_all(b"st: x\r\n\r\nGET /b HTTP/1.1\r\nHo")
        .await
        .unwrap();
    read_outcome(&mut t).await.unwrap();
    let second = t.head.at.expect("a deadline for the second head");
    assert!(
        second >= first + Duration::from_millis(90),
        "{first:?} {second:?}"
    );
}

#[tokio::test]
async fn a_write_the_client_never_takes_fails_after_the_send_timeout() {
    // A 64-byte pipe the client never reads.
    let (_client, server) = tokio::io::duplex(64);
    let mut t = tap(server);
    let chunk = [b'x'; 1024];
    let started = tokio::time::Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Err(e) = t.write(&chunk).await {
                return e;
            }
        }
    })
    .await
    .expect("the write gives up within 5 s");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert_eq!(
        err.get_ref().and_then(|e| e.downcast_ref()),
        Some(&Slow::Send)
    );
    let took = started.elapsed();
    assert!(took >= SEND_TIMEOUT - Duration::from_millis(50), "{took:?}");
}

#[tokio::test]
async fn a_slow_reader_that_keeps_reading_is_not_cut_off() {
    let (mut client, server) = tokio::io::duplex(64);
    let mut t = tap(server);
    let reader = tokio::spawn(async move {
        let mut buf = [0u8; 64];
        let mut total = 0;
        // Slower than the writer, but never silent for the send timeout.
        while total < 4096 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            total += client.read(&mut buf).await.unwrap();
        }
        total
    });
    t.write_all(&[b'y'; 4096])
        .await
        .expect("every byte taken in time");
    t.flush().await.unwrap();
    assert!(!t.write.is_set());
    assert_eq!(reader.await.unwrap(), 4096);
}

#[test]
fn parser_cap_keeps_a_margin_within_hypers_stack_room() {
    // Margin of 16 for the gateway's own check while it fits the stack.
    assert_eq!(parser_max_headers(10), 26);
    assert_eq!(parser_max_headers(84), 100);
    // The default limit: the cap is the limit, no per-request arrays.
    assert_eq!(parser_max_headers(100), 100);
    assert_eq!(parser_max_headers(90), 100);
    // Above hyper's stack room the operator asked for many: margin again.
    assert_eq!(parser_max_headers(101), 117);
    assert_eq!(parser_max_headers(usize::MAX), usize::MAX);
    for limit in 0..300 {
        assert!(
            parser_max_headers(limit) >= limit,
            "cap under the limit {limit}"
        );
    }
}

/// The future of an HTTP/1 connection keeps its TLS stream once: an
/// `async fn` would hold its arguments twice (as passed and as bound),
/// about 1.5 KiB more for every open connection.
#[test]
fn the_connection_future_holds_its_stream_once() {
    fn future_size<A, F: Future>(_: impl Fn(A) -> F) -> usize {
        std::mem::size_of::<F>()
    }
    type Args = (
        Arc<portcullis_telemetry::Metrics>,
        Http1Io,
        hyper::server::conn::http1::Builder,
        Duration,
        DrainWatch,
    );
    let size = future_size(|(metrics, io, builder, idle, drain): Args| {
        let svc = service_fn(|_req: http::Request<hyper::body::Incoming>| {
            std::future::ready(Ok::<_, std::convert::Infallible>(http::Response::new(
                http_body_util::Empty::<bytes::Bytes>::new(),
            )))
        });
        run(metrics, io, svc, builder, idle, drain)
    });
    let stream = std::mem::size_of::<Http1Io>();
    assert!(
        size < stream + 1024,
        "connection future of {size} bytes for a stream of {stream}"
    );
}
