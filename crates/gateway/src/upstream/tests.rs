//! The upstream client against real sockets: a small HTTP/1.1 server on
//! 127.0.0.1 that counts its connections and sees them close.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

#[derive(Clone, Copy)]
enum Behaviour {
    /// Answers every request with `ok`, keeping the connection open.
    KeepAlive,
    /// Answers one request, then closes without saying so.
    CloseAfterOne,
    /// Answers with `connection: close`, then closes.
    ConnectionClose,
    /// Answers with an empty body.
    Empty,
    /// Sends the head and 64 KiB of a 1 MiB body, then waits.
    LongBody,
    /// Answers as soon as the head arrives, without reading the body.
    Early,
}

struct TestUpstream {
    port: u16,
    accepted: Arc<AtomicUsize>,
    /// Connections the client has closed (read returned 0).
    closed_by_client: Arc<AtomicUsize>,
}

async fn upstream(behaviour: Behaviour) -> TestUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let closed_by_client = Arc::new(AtomicUsize::new(0));
    let (a, c) = (Arc::clone(&accepted), Arc::clone(&closed_by_client));
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            a.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(s, behaviour, Arc::clone(&c)));
        }
    });
    TestUpstream {
        port,
        accepted,
        closed_by_client,
    }
}

async fn serve(mut s: TcpStream, behaviour: Behaviour, closed: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // one request head (the tests send no bodies)
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    closed.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
        buf.drain(..end);
        let reply: &[u8] = match behaviour {
            Behaviour::KeepAlive | Behaviour::CloseAfterOne | Behaviour::Early => {
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
            }
            Behaviour::ConnectionClose => {
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            }
            Behaviour::Empty => b"HTTP/1.1 204 No Content\r\n\r\n",
            Behaviour::LongBody => b"HTTP/1.1 200 OK\r\ncontent-length: 1048576\r\n\r\n",
        };
        if s.write_all(reply).await.is_err() {
            return;
        }
        match behaviour {
            Behaviour::CloseAfterOne | Behaviour::ConnectionClose => return,
            Behaviour::LongBody => {
                let _ = s.write_all(&[b'x'; 65536]).await;
                // wait for the client to go away
                loop {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => {
                            closed.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        Ok(_) => {}
                    }
                }
            }
            Behaviour::KeepAlive | Behaviour::Empty => {}
            // the unread body bytes would be taken for the next head
            Behaviour::Early => loop {
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            },
        }
    }
}

fn client(port: u16, idle_timeout: Duration) -> UpstreamClient {
    let u = Upstream {
        scheme: http::uri::Scheme::HTTP,
        authority: format!("127.0.0.1:{port}").parse().expect("authority"),
        ca: None,
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        idle_timeout,
        body_timeout: Duration::from_secs(5),
    };
    UpstreamClient::new(&u).expect("client")
}

fn get(port: u16) -> http::Request<Body> {
    let mut req = http::Request::new(Empty::<Bytes>::new().map_err(|e| match e {}).boxed());
    *req.uri_mut() = http::Uri::from_static("/test");
    req.headers_mut().insert(
        http::header::HOST,
        http::HeaderValue::from_str(&format!("127.0.0.1:{port}")).expect("host"),
    );
    req
}

/// One request, its body read to the end.
async fn fetch(c: &UpstreamClient, port: u16) -> (http::StatusCode, Bytes) {
    let resp = c.send(get(port)).await.expect("response");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, body)
}

/// `n` requests one after the other, each answered `200 ok`.
async fn fetch_ok(c: &UpstreamClient, port: u16, n: usize) {
    for _ in 0..n {
        let (status, body) = fetch(c, port).await;
        assert_eq!(status, 200);
        assert_eq!(&body[..], b"ok");
    }
}

/// Waits (bounded) until `f` holds.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not within 2 s: {what}");
}

const LONG_IDLE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn sequential_requests_reuse_one_connection() {
    let up = upstream(Behaviour::KeepAlive).await;
    let c = client(up.port, LONG_IDLE);
    fetch_ok(&c, up.port, 5).await;
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(c.pool.idle_len(), 1);
}

#[tokio::test]
async fn concurrent_requests_get_their_own_connections_then_reuse_them() {
    let up = upstream(Behaviour::KeepAlive).await;
    let c = client(up.port, LONG_IDLE);
    // Three responses held open at once need three connections.
    let held = hold(&c, up.port, 3).await;
    assert_eq!(up.accepted.load(Ordering::SeqCst), 3);
    for r in held {
        r.into_body().collect().await.expect("body");
    }
    assert_eq!(c.pool.idle_len(), 3);
    fetch_ok(&c, up.port, 6).await;
    assert_eq!(up.accepted.load(Ordering::SeqCst), 3, "no new connection");
}

#[tokio::test]
async fn the_pool_keeps_at_most_its_limit() {
    let up = upstream(Behaviour::KeepAlive).await;
    let mut c = client(up.port, LONG_IDLE);
    c.pool = Arc::new(Pool::new(LONG_IDLE, 2));
    let held: Vec<_> = hold(&c, up.port, 4).await;
    for r in held {
        r.into_body().collect().await.expect("body");
    }
    assert_eq!(c.pool.idle_len(), 2);
    // the two connections over the limit were closed
    eventually("two connections closed", || {
        up.closed_by_client.load(Ordering::SeqCst) == 2
    })
    .await;
}

async fn hold(c: &UpstreamClient, port: u16, n: usize) -> Vec<http::Response<UpstreamBody>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(c.send(get(port)).await.expect("response"));
    }
    out
}

#[tokio::test]
async fn a_connection_the_upstream_closed_is_never_used_again() {
    let up = upstream(Behaviour::CloseAfterOne).await;
    let c = client(up.port, LONG_IDLE);
    // After each answer the upstream closes the pooled connection; whether
    // or not its task has noticed yet, the next request is answered on a
    // new one and none fails.
    fetch_ok(&c, up.port, 4).await;
    assert_eq!(up.accepted.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_connection_close_response_is_not_pooled() {
    let up = upstream(Behaviour::ConnectionClose).await;
    let c = client(up.port, LONG_IDLE);
    assert_eq!(fetch(&c, up.port).await.0, 200);
    eventually("pool empty", || c.pool.idle_len() == 0).await;
    assert_eq!(fetch(&c, up.port).await.0, 200);
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_empty_body_gives_its_connection_back_without_being_read() {
    let up = upstream(Behaviour::Empty).await;
    let c = client(up.port, LONG_IDLE);
    for _ in 0..3 {
        let resp = c.send(get(up.port)).await.expect("response");
        assert_eq!(resp.status(), 204);
        drop(resp);
    }
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_body_dropped_before_its_end_closes_its_connection() {
    let up = upstream(Behaviour::LongBody).await;
    let c = client(up.port, LONG_IDLE);
    let mut body = c.send(get(up.port)).await.expect("response").into_body();
    let first = body.frame().await.expect("a frame").expect("data");
    assert!(first.is_data());
    drop(body);
    eventually("the upstream saw the connection close", || {
        up.closed_by_client.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(
        c.pool.idle_len(),
        0,
        "an unfinished connection is not pooled"
    );
    let _next = c.send(get(up.port)).await.expect("response");
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let up = upstream(Behaviour::KeepAlive).await;
    let c = client(up.port, Duration::from_millis(200));
    assert_eq!(fetch(&c, up.port).await.0, 200);
    assert_eq!(c.pool.idle_len(), 1);
    // Not before the idle timeout...
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(up.closed_by_client.load(Ordering::SeqCst), 0);
    // ...and by one and a quarter of it (plus scheduling slack).
    eventually("the idle connection closed", || {
        up.closed_by_client.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(c.pool.idle_len(), 0);
    assert_eq!(fetch(&c, up.port).await.0, 200);
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
}

/// A request body that sends one chunk and then never ends.
struct Endless(bool);

impl http_body::Body for Endless {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.0 {
            Poll::Pending
        } else {
            self.0 = true;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
        }
    }
}

#[tokio::test]
async fn a_request_does_not_wait_behind_an_unfinished_request_body() {
    let up = upstream(Behaviour::Early).await;
    let c = client(up.port, LONG_IDLE);
    let mut req = get(up.port);
    *req.method_mut() = http::Method::POST;
    *req.body_mut() = Endless(false).boxed();
    // The upstream answers before the body is done; the response ends,
    // but the connection is still busy sending the body.
    let resp = c.send(req).await.expect("early answer");
    resp.into_body().collect().await.expect("body");
    let answered = tokio::time::timeout(Duration::from_secs(2), fetch(&c, up.port))
        .await
        .expect("the next request waited behind the unfinished body");
    assert_eq!(answered.0, 200);
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
}

#[test]
fn the_request_future_stays_small() {
    // Every request's future embeds this one: a connect or TLS future
    // inside it would be copied on every request.
    let c = client(1, LONG_IDLE);
    let fut = c.send(get(1));
    let size = std::mem::size_of_val(&fut);
    assert!(size <= 1024, "upstream send future is {size} bytes");
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr").port()
    };
    let c = client(port, LONG_IDLE);
    match c.send(get(port)).await {
        Err(UpstreamError::Connect(msg)) => assert!(msg.contains("127.0.0.1"), "{msg}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("answered"),
    }
}
