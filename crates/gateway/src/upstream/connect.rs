//! New upstream connections: TCP (each resolved address in turn, within
//! the connect timeout), TLS for `https` upstreams (verified against the
//! route's CA, ALPN `h2` or `http/1.1`), then hyper's HTTP handshake. The
//! connection's task is spawned on the current runtime and ends when the
//! connection closes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use portcullis_config::Upstream;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use super::{error_chain, Sender, UpstreamError};

pub(super) struct Connector {
    /// Host name without brackets, for resolution.
    host: String,
    port: u16,
    /// The address when the upstream is an IP literal (no resolution).
    addr: Option<SocketAddr>,
    tls: Option<Tls>,
    connect_timeout: Duration,
}

struct Tls {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl Connector {
    pub(super) fn new(u: &Upstream) -> Result<Self, UpstreamError> {
        let https = u.scheme == http::uri::Scheme::HTTPS;
        let host = u
            .authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = u
            .authority
            .port_u16()
            .unwrap_or(if https { 443 } else { 80 });
        let addr = host
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, port));
        let tls = match (&u.ca, https) {
            (Some(roots), true) => {
                let config = portcullis_authn::upstream_client_config(roots.clone())
                    .map_err(|e| UpstreamError::Tls(e.to_string()))?;
                let name = ServerName::try_from(host.clone())
                    .map_err(|e| UpstreamError::Tls(format!("server name `{host}`: {e}")))?;
                Some(Tls {
                    connector: tokio_rustls::TlsConnector::from(Arc::clone(&config)),
                    name,
                })
            }
            // Refused at load; never plain text to an https upstream.
            (None, true) => {
                return Err(UpstreamError::Tls(
                    "an https upstream needs a CA bundle".into(),
                ))
            }
            (_, false) => None,
        };
        Ok(Self {
            host,
            port,
            addr,
            tls,
            connect_timeout: u.connect_timeout,
        })
    }

    /// A new connection, TCP and TLS established within the connect
    /// timeout.
    pub(super) async fn connect(&self) -> Result<Sender, UpstreamError> {
        let timeout = self.connect_timeout;
        tokio::time::timeout(timeout, self.establish())
            .await
            .map_err(|_| UpstreamError::Connect(format!("no connection within {timeout:?}")))?
    }

    async fn establish(&self) -> Result<Sender, UpstreamError> {
        let tcp = self.tcp().await?;
        match &self.tls {
            None => h1(TokioIo::new(tcp)).await,
            Some(tls) => {
                let stream = tls
                    .connector
                    .connect(tls.name.clone(), tcp)
                    .await
                    .map_err(|e| UpstreamError::Connect(format!("tls: {}", error_chain(&e))))?;
                if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                    h2(TokioIo::new(stream)).await
                } else {
                    h1(TokioIo::new(stream)).await
                }
            }
        }
    }

    async fn tcp(&self) -> Result<TcpStream, UpstreamError> {
        let addrs: Vec<SocketAddr> = match self.addr {
            Some(a) => vec![a],
            None => tokio::net::lookup_host((self.host.as_str(), self.port))
                .await
                .map_err(|e| UpstreamError::Connect(format!("resolving `{}`: {e}", self.host)))?
                .collect(),
        };
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    // Small requests and responses go out at once.
                    s.set_nodelay(true)
                        .map_err(|e| UpstreamError::Connect(format!("{addr}: {e}")))?;
                    return Ok(s);
                }
                Err(e) => last = Some(format!("{addr}: {e}")),
            }
        }
        Err(UpstreamError::Connect(last.unwrap_or_else(|| {
            format!("`{}` resolves to no address", self.host)
        })))
    }
}

async fn h1<T>(io: TokioIo<T>) -> Result<Sender, UpstreamError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (tx, conn) = http1::handshake(io)
        .await
        .map_err(|e| UpstreamError::Connect(error_chain(&e)))?;
    drive(conn);
    Ok(Sender::H1(tx))
}

async fn h2<T>(io: TokioIo<T>) -> Result<Sender, UpstreamError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (tx, conn) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(io)
        .await
        .map_err(|e| UpstreamError::Connect(error_chain(&e)))?;
    drive(conn);
    Ok(Sender::H2(tx))
}

/// Runs a connection's task on the current runtime until it closes.
fn drive<C>(conn: C)
where
    C: std::future::Future<Output = hyper::Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
}
