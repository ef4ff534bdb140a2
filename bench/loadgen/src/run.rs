//! The three measurements. Each loop counts its own results and the
//! counts are merged at the end, so loops share nothing while they run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{header, HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use crate::headers::ExtraHeaders;
use crate::report::{new_histogram, record, Report};
use crate::target::Target;
use crate::{
    check_bound, LoadgenError, CONNECT_TIMEOUT, IDLE_OPEN_CONCURRENCY, MAX_CONCURRENCY,
    MAX_DURATION, MAX_HOLD, MAX_IDLE_CONNECTIONS, MAX_RESPONSE_BODY, REQUEST_TIMEOUT, RETRY_PAUSE,
};

/// What to run against which target.
#[derive(Debug, Clone)]
pub struct Spec {
    pub target: Target,
    pub tls: Arc<ClientConfig>,
    /// Concurrent loops (keep-alive, handshakes) or connections (idle).
    pub connections: usize,
    /// How long loops run (keep-alive, handshakes) or connections are
    /// held (idle).
    pub duration: Duration,
    /// Headers added to every request besides `Host`.
    pub headers: Arc<ExtraHeaders>,
}

/// The request every loop sends, built once.
struct Prepared {
    target: Target,
    connector: TlsConnector,
    uri: Uri,
    host: HeaderValue,
    headers: Arc<ExtraHeaders>,
}

impl Prepared {
    fn new(spec: &Spec) -> Result<Arc<Self>, LoadgenError> {
        let bad = |reason| LoadgenError::Target {
            url: spec.target.path_and_query.clone(),
            reason,
        };
        Ok(Arc::new(Self {
            target: spec.target.clone(),
            connector: TlsConnector::from(spec.tls.clone()),
            uri: spec
                .target
                .path_and_query
                .parse()
                .map_err(|_| bad("invalid request target"))?,
            host: HeaderValue::from_str(&spec.target.host_header)
                .map_err(|_| bad("invalid host header"))?,
            headers: spec.headers.clone(),
        }))
    }
}

/// One open HTTP/1.1 connection; `driver` owns the socket.
struct Conn {
    sender: SendRequest<Empty<Bytes>>,
    driver: JoinHandle<()>,
}

async fn open(p: &Prepared) -> Result<(Conn, String), String> {
    let fut = async {
        let tcp = TcpStream::connect(p.target.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let tls = p
            .connector
            .connect(p.target.server_name.clone(), tcp)
            .await
            .map_err(|e| format!("tls handshake: {e}"))?;
        let info = crate::tls::describe(tls.get_ref().1);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("http handshake: {e}"))?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok((Conn { sender, driver }, info))
    };
    tokio::time::timeout(CONNECT_TIMEOUT, fut)
        .await
        .map_err(|_| format!("connect and handshake took over {CONNECT_TIMEOUT:?}"))?
}

async fn request(conn: &mut Conn, p: &Prepared) -> Result<StatusCode, String> {
    let fut = async {
        conn.sender
            .ready()
            .await
            .map_err(|e| format!("connection closed: {e}"))?;
        let mut req = Request::new(Empty::new());
        *req.uri_mut() = p.uri.clone();
        req.headers_mut().insert(header::HOST, p.host.clone());
        p.headers.apply(req.headers_mut());
        let resp = conn
            .sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = resp.status();
        Limited::new(resp.into_body(), MAX_RESPONSE_BODY)
            .collect()
            .await
            .map_err(|e| format!("response body: {e}"))?;
        Ok(status)
    };
    tokio::time::timeout(REQUEST_TIMEOUT, fut)
        .await
        .map_err(|_| format!("request took over {REQUEST_TIMEOUT:?}"))?
}

/// One loop's counts.
struct Tally {
    requests: u64,
    errors: u64,
    non_2xx: u64,
    latency: Histogram<u64>,
    tls: Option<String>,
    first_error: Option<String>,
}

impl Tally {
    fn new() -> Result<Self, LoadgenError> {
        Ok(Self {
            requests: 0,
            errors: 0,
            non_2xx: 0,
            latency: new_histogram()?,
            tls: None,
            first_error: None,
        })
    }

    fn error(&mut self, e: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }

    fn completed(&mut self, status: StatusCode, took: Duration) {
        self.requests += 1;
        if !status.is_success() {
            self.non_2xx += 1;
        }
        record(&mut self.latency, took);
    }

    fn merge(&mut self, o: Tally) -> Result<(), LoadgenError> {
        self.requests += o.requests;
        self.errors += o.errors;
        self.non_2xx += o.non_2xx;
        self.latency
            .add(&o.latency)
            .map_err(|e| LoadgenError::Histogram(e.to_string()))?;
        if self.tls.is_none() {
            self.tls = o.tls;
        }
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
        Ok(())
    }

    fn into_report(self, mode: &'static str, connections: usize, elapsed: Duration) -> Report {
        Report {
            mode,
            connections,
            requests: self.requests,
            errors: self.errors,
            non_2xx: self.non_2xx,
            elapsed,
            latency: self.latency,
            tls: self.tls,
            first_error: self.first_error,
        }
    }
}

async fn join_all(
    handles: Vec<JoinHandle<Result<Tally, LoadgenError>>>,
) -> Result<Tally, LoadgenError> {
    let mut total = Tally::new()?;
    for h in handles {
        match h.await {
            Ok(t) => total.merge(t?)?,
            Err(e) => total.error(format!("loop ended abnormally: {e}")),
        }
    }
    Ok(total)
}

fn check_spec(
    spec: &Spec,
    max_connections: usize,
    max_duration: Duration,
) -> Result<(), LoadgenError> {
    check_bound("connections", spec.connections, 1, max_connections)?;
    check_bound(
        "duration (ms)",
        spec.duration.as_millis(),
        1,
        max_duration.as_millis(),
    )?;
    Ok(())
}

/// `spec.connections` keep-alive connections, each sending the next
/// request as soon as the previous response has been read, until
/// `spec.duration` has passed. A failed connection is replaced.
pub async fn keepalive(spec: &Spec) -> Result<Report, LoadgenError> {
    check_spec(spec, MAX_CONCURRENCY, MAX_DURATION)?;
    let p = Prepared::new(spec)?;
    let start = Instant::now();
    let deadline = start + spec.duration;
    let handles = (0..spec.connections)
        .map(|_| tokio::spawn(keepalive_loop(p.clone(), deadline)))
        .collect();
    let total = join_all(handles).await?;
    Ok(total.into_report("keepalive", spec.connections, start.elapsed()))
}

async fn keepalive_loop(p: Arc<Prepared>, deadline: Instant) -> Result<Tally, LoadgenError> {
    let mut t = Tally::new()?;
    while Instant::now() < deadline {
        let mut conn = match open(&p).await {
            Ok((c, info)) => {
                t.tls.get_or_insert(info);
                c
            }
            Err(e) => {
                t.error(e);
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        while Instant::now() < deadline {
            let sent = Instant::now();
            match request(&mut conn, &p).await {
                Ok(status) => t.completed(status, sent.elapsed()),
                Err(e) => {
                    t.error(e);
                    break;
                }
            }
        }
        conn.driver.abort();
    }
    Ok(t)
}

/// `spec.connections` loops, each opening a new connection (full mTLS
/// handshake), sending one request and closing, until `spec.duration`
/// has passed. The report's `requests` counts completed iterations.
pub async fn handshakes(spec: &Spec) -> Result<Report, LoadgenError> {
    check_spec(spec, MAX_CONCURRENCY, MAX_DURATION)?;
    let p = Prepared::new(spec)?;
    let start = Instant::now();
    let deadline = start + spec.duration;
    let handles = (0..spec.connections)
        .map(|_| tokio::spawn(handshake_loop(p.clone(), deadline)))
        .collect();
    let total = join_all(handles).await?;
    Ok(total.into_report("handshakes", spec.connections, start.elapsed()))
}

async fn handshake_loop(p: Arc<Prepared>, deadline: Instant) -> Result<Tally, LoadgenError> {
    let mut t = Tally::new()?;
    while Instant::now() < deadline {
        let began = Instant::now();
        let mut conn = match open(&p).await {
            Ok((c, info)) => {
                t.tls.get_or_insert(info);
                c
            }
            Err(e) => {
                t.error(e);
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        match request(&mut conn, &p).await {
            Ok(status) => t.completed(status, began.elapsed()),
            Err(e) => t.error(e),
        }
        // Dropping the sender makes the driver close the connection.
        let Conn { sender, mut driver } = conn;
        drop(sender);
        if tokio::time::timeout(REQUEST_TIMEOUT, &mut driver)
            .await
            .is_err()
        {
            driver.abort();
        }
    }
    Ok(t)
}

/// The result of idle mode.
#[derive(Debug, Clone)]
pub struct IdleOutcome {
    /// Connections opened and used once (`requests`), failures (`errors`).
    pub opened: Report,
    /// Connections still open when the hold time ended.
    pub still_open: usize,
}

/// Opens `spec.connections` connections (at most
/// [`IDLE_OPEN_CONCURRENCY`] at a time), sends one request on each, calls
/// `on_open` once all have been tried, then holds the successful ones
/// open for `spec.duration` and closes them.
pub async fn idle(spec: &Spec, on_open: impl FnOnce(&Report)) -> Result<IdleOutcome, LoadgenError> {
    check_spec(spec, MAX_IDLE_CONNECTIONS, MAX_HOLD)?;
    let p = Prepared::new(spec)?;
    let gate = Arc::new(tokio::sync::Semaphore::new(IDLE_OPEN_CONCURRENCY));
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::unbounded_channel();
    let start = Instant::now();
    let mut handles = Vec::with_capacity(spec.connections);
    for _ in 0..spec.connections {
        let p = p.clone();
        let gate = gate.clone();
        let opened_tx = opened_tx.clone();
        let mut release = release_rx.clone();
        handles.push(tokio::spawn(async move {
            let outcome = async {
                let _permit = gate
                    .acquire_owned()
                    .await
                    .map_err(|e| format!("open gate closed: {e}"))?;
                let began = Instant::now();
                let (mut conn, info) = open(&p).await?;
                let status = request(&mut conn, &p).await?;
                Ok::<_, String>((conn, info, status, began.elapsed()))
            }
            .await;
            let conn = match outcome {
                Ok((conn, info, status, took)) => {
                    let _ = opened_tx.send(Ok((info, status, took)));
                    conn
                }
                Err(e) => {
                    let _ = opened_tx.send(Err(e));
                    return false;
                }
            };
            drop(opened_tx);
            let Conn { sender, mut driver } = conn;
            let open_at_release = tokio::select! {
                _ = &mut driver => false,
                _ = release.wait_for(|r| *r) => true,
            };
            drop(sender);
            driver.abort();
            open_at_release
        }));
    }
    drop(opened_tx);
    let mut t = Tally::new()?;
    while let Some(r) = opened_rx.recv().await {
        match r {
            Ok((info, status, took)) => {
                t.tls.get_or_insert(info);
                t.completed(status, took);
            }
            Err(e) => t.error(e),
        }
    }
    let opened = t.into_report("idle", spec.connections, start.elapsed());
    on_open(&opened);
    tokio::time::sleep(spec.duration).await;
    let _ = release_tx.send(true);
    let mut still_open = 0;
    for h in handles {
        if matches!(h.await, Ok(true)) {
            still_open += 1;
        }
    }
    Ok(IdleOutcome { opened, still_open })
}

#[cfg(test)]
mod tests;
