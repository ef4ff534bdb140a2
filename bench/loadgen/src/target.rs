//! The target URL: `https://127.0.0.1:PORT/path`, nothing else.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rustls_pki_types::ServerName;

use crate::LoadgenError;

/// The only address the load generator sends traffic to.
pub const ALLOWED_HOST: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// Port used when the URL names none.
pub const DEFAULT_PORT: u16 = 443;

/// Where and what to request.
#[derive(Debug, Clone)]
pub struct Target {
    /// Always `127.0.0.1:PORT`.
    pub addr: SocketAddr,
    /// Request target of every request, e.g. `/api/bench`.
    pub path_and_query: String,
    /// TLS server name (SNI) and the name the server certificate must hold.
    pub server_name: ServerName<'static>,
    /// `Host` header: the server name and the port.
    pub host_header: String,
}

/// Parses `url` and checks it points at `127.0.0.1` over `https`; `sni`
/// is the TLS server name, also sent in the `Host` header.
pub fn parse_target(url: &str, sni: &str) -> Result<Target, LoadgenError> {
    let bad = |reason| LoadgenError::Target {
        url: url.to_owned(),
        reason,
    };
    let uri: http::Uri = url.parse().map_err(|_| bad("not a valid url"))?;
    if uri.scheme_str() != Some("https") {
        return Err(bad("scheme must be `https`"));
    }
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("user information is not allowed"));
    }
    let ip: IpAddr = authority
        .host()
        .parse()
        .map_err(|_| bad("host must be the address 127.0.0.1"))?;
    if ip != IpAddr::V4(ALLOWED_HOST) {
        return Err(bad("host must be the address 127.0.0.1"));
    }
    let port = authority.port_u16().unwrap_or(DEFAULT_PORT);
    if port == 0 {
        return Err(bad("port 0 is not a port"));
    }
    let path_and_query = uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());
    let path_and_query = if path_and_query.is_empty() {
        "/".to_owned()
    } else {
        path_and_query
    };
    let server_name = ServerName::try_from(sni.to_owned())
        .map_err(|_| LoadgenError::ServerName(sni.to_owned()))?;
    let host_header = format!("{sni}:{port}");
    http::HeaderValue::from_str(&host_header)
        .map_err(|_| LoadgenError::ServerName(sni.to_owned()))?;
    Ok(Target {
        addr: SocketAddr::new(ip, port),
        path_and_query,
        server_name,
        host_header,
    })
}

#[cfg(test)]
mod tests;
