//! `portcullis quickstart`: a working demo on embedded defaults — a dev
//! CA, a server certificate, two workload certificates with different
//! roles, a configuration and a policy, a demo upstream that echoes what
//! it received, and the gateway in front of it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use portcullis_identity::SpiffeId;
use portcullis_pki::IssueRequest;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Working directory to create (reused if it already holds a quickstart PKI).
    #[arg(long, default_value = "portcullis-quickstart")]
    dir: PathBuf,
    /// Gateway port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8443)]
    port: u16,
    /// Admin port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 9901)]
    admin_port: u16,
    /// Run the demo requests, print each outcome and exit (non-zero if one
    /// differs from what is expected). Uses free ports unless given.
    #[arg(long)]
    demo: bool,
}

const TRUST_DOMAIN: &str = "quickstart.portcullis.test";
const READER: &str = "spiffe://quickstart.portcullis.test/ns/demo/sa/reader";
const WRITER: &str = "spiffe://quickstart.portcullis.test/ns/demo/sa/writer";

const POLICY: &str = r#"# Quickstart policy: default deny; readers may read, writers may also write.
revision: "quickstart-1"
roles:
  reader: {}
  writer: { inherits: [reader] }
bindings:
  - { role: reader, spiffe_id: "spiffe://quickstart.portcullis.test/ns/demo/sa/reader" }
  - { role: writer, spiffe_id: "spiffe://quickstart.portcullis.test/ns/demo/sa/writer" }
rules:
  - id: api-read
    effect: allow
    roles: [reader]
    route: api
    methods: [GET, HEAD]
    path: /api/**
  - id: api-write
    effect: allow
    roles: [writer]
    route: api
    methods: [POST, PUT, DELETE]
    path: /api/**
  - id: no-admin-api
    effect: deny
    route: api
    path: /api/admin/**
"#;

fn config_yaml(port: u16, admin_port: u16, upstream: SocketAddr) -> String {
    format!(
        r#"# Quickstart configuration (see docs/configuration.md).
listeners:
  - name: public
    bind: 127.0.0.1:{port}
    tls:
      cert: pki/server.pem
      key: pki/server.key
      client_ca: pki/ca-bundle.pem
      client_auth: required
      spiffe_trust_domains: [{TRUST_DOMAIN}]
routes:
  - name: api
    path_prefix: /api
    upstream:
      url: http://{upstream}
policy:
  file: policy.yaml
admin:
  bind: 127.0.0.1:{admin_port}
audit:
  dest: audit.log
"#
    )
}

pub(crate) fn run(a: Args) -> anyhow::Result<ExitCode> {
    let rt = super::runtime()?;
    rt.block_on(run_async(a))
}

fn prepare_pki(dir: &Path) -> anyhow::Result<()> {
    let pki = dir.join("pki");
    if pki.join("ca-bundle.pem").is_file() {
        return Ok(());
    }
    std::fs::create_dir_all(&pki).with_context(|| format!("cannot create `{}`", pki.display()))?;
    portcullis_pki::init_dir(&pki)?;
    let mut server = IssueRequest::server("localhost");
    server.ips.push(std::net::IpAddr::from([127, 0, 0, 1]));
    portcullis_pki::issue_to_dir(&pki, "server", &server)?;
    for (name, id) in [("reader", READER), ("writer", WRITER)] {
        let mut req = IssueRequest::client(name);
        req.spiffe_id = Some(SpiffeId::parse(id).map_err(|e| anyhow::anyhow!("{e}"))?);
        portcullis_pki::issue_to_dir(&pki, name, &req)?;
    }
    Ok(())
}

async fn run_async(a: Args) -> anyhow::Result<ExitCode> {
    let (port, admin_port) = if a.demo && a.port == 8443 && a.admin_port == 9901 {
        (0, 0)
    } else {
        (a.port, a.admin_port)
    };
    std::fs::create_dir_all(&a.dir)
        .with_context(|| format!("cannot create `{}`", a.dir.display()))?;
    prepare_pki(&a.dir)?;
    let upstream = start_echo_upstream().await?;
    std::fs::write(a.dir.join("policy.yaml"), POLICY)?;
    let config_path = a.dir.join("portcullis.yaml");
    std::fs::write(&config_path, config_yaml(port, admin_port, upstream))?;

    let gw = portcullis_gateway::Gateway::start(&config_path).await?;
    let addr = *gw
        .listener_addrs()
        .get("public")
        .ok_or_else(|| anyhow::anyhow!("listener `public` did not start"))?;
    let dir = a.dir.display();
    if a.demo {
        let ok = demo(&a.dir, addr).await?;
        gw.shutdown().await;
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let base = format!("https://localhost:{}", addr.port());
    let curl = |who: &str| {
        format!("curl --cacert {dir}/pki/ca-bundle.pem --cert {dir}/pki/{who}.pem --key {dir}/pki/{who}.key")
    };
    println!(
        "Portcullis is running: gateway {base}, admin http://{}",
        gw.admin_addr().map(|a| a.to_string()).unwrap_or_default()
    );
    println!(
        "Files are in {dir}/ (config portcullis.yaml, policy policy.yaml, audit log audit.log)\n"
    );
    println!("# allowed (200): the reader may read");
    println!("{} {base}/api/hello\n", curl("reader"));
    println!("# forbidden (403): the reader may not write");
    println!("{} -X POST {base}/api/hello\n", curl("reader"));
    println!("# refused (TLS alert): no client certificate");
    println!("curl --cacert {dir}/pki/ca-bundle.pem {base}/api/hello\n");
    println!("# allowed (200): the writer may write");
    println!("{} -X POST -d hi {base}/api/hello\n", curl("writer"));
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    gw.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// What a demo request is expected to produce.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Status(u16),
    Refused,
}

async fn demo(dir: &Path, addr: SocketAddr) -> anyhow::Result<bool> {
    let cases: [(&str, Option<&str>, &str, &str, Outcome); 5] = [
        (
            "reader reads",
            Some("reader"),
            "GET",
            "/api/hello",
            Outcome::Status(200),
        ),
        (
            "reader writes",
            Some("reader"),
            "POST",
            "/api/hello",
            Outcome::Status(403),
        ),
        (
            "no client certificate",
            None,
            "GET",
            "/api/hello",
            Outcome::Refused,
        ),
        (
            "writer writes",
            Some("writer"),
            "POST",
            "/api/hello",
            Outcome::Status(200),
        ),
        (
            "writer calls the admin api",
            Some("writer"),
            "GET",
            "/api/admin/users",
            Outcome::Status(403),
        ),
    ];
    let mut all_ok = true;
    for (what, who, method, path, want) in cases {
        let got = match request(dir, addr, who, method, path).await {
            Ok(status) => Outcome::Status(status),
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), "demo request refused");
                Outcome::Refused
            }
        };
        let ok = got == want;
        all_ok &= ok;
        println!(
            "{} {what:<28} {method:<4} {path:<18} expected {want:?}, got {got:?}",
            if ok { "ok  " } else { "FAIL" }
        );
    }
    println!(
        "{}",
        if all_ok {
            "quickstart demo: all outcomes as expected"
        } else {
            "quickstart demo: some outcomes differ"
        }
    );
    Ok(all_ok)
}

async fn request(
    dir: &Path,
    addr: SocketAddr,
    who: Option<&str>,
    method: &str,
    path: &str,
) -> anyhow::Result<u16> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(dir.join("pki/ca-bundle.pem"))? {
        roots.add(c?)?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match who {
        Some(w) => {
            let chain = CertificateDer::pem_file_iter(dir.join(format!("pki/{w}.pem")))?
                .collect::<Result<Vec<_>, _>>()?;
            let key = PrivateKeyDer::from_pem_file(dir.join(format!("pki/{w}.key")))?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let tls = connector
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, format!("localhost:{}", addr.port()))
        .body(Full::new(Bytes::from_static(b"hello")))?;
    let resp = send.send_request(req).await?;
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await?;
    Ok(status)
}

/// A demo upstream on 127.0.0.1 that answers with what it received.
async fn start_echo_upstream() -> anyhow::Result<SocketAddr> {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = tcp.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = tcp.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let (parts, body) = req.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let headers: serde_json::Map<String, serde_json::Value> = parts
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.as_str().to_owned(),
                                serde_json::Value::String(
                                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                ),
                            )
                        })
                        .collect();
                    let echo = serde_json::json!({
                        "method": parts.method.as_str(),
                        "path": parts.uri.to_string(),
                        "headers": headers,
                        "body": String::from_utf8_lossy(&body),
                    });
                    let mut resp =
                        http::Response::new(Full::new(Bytes::from(format!("{echo:#}\n"))));
                    resp.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/json"),
                    );
                    Ok::<_, std::convert::Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}
