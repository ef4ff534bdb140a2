//! Real TLS handshakes over 127.0.0.1 between a rustls client and the
//! gateway's server configuration, with certificates from the dev PKI.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "helpers outside #[test] functions fail the test on any setup error"
)]

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use portcullis_authn::{
    classify_handshake_error, identity_from_chain, server_config, upstream_client_config,
    ClientAuthConfig, ClientAuthMode, ClientVerifier, IdentityError,
};
use portcullis_identity::{CertIdentity, SpiffeId, Thumbprint, TrustDomain};
use portcullis_pki::{Ca, CertifiedKey, IssueRequest, Usage};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName};
use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, HandshakeKind, ProtocolVersion, RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

struct Pki {
    root: Ca,
    int: Ca,
    server: CertifiedKey,
}

fn pki() -> Pki {
    let root = Ca::new_root("Portcullis Test Root").unwrap();
    let int = root
        .new_intermediate("Portcullis Test Intermediate")
        .unwrap();
    let server = int.issue(&IssueRequest::server("localhost")).unwrap();
    Pki { root, int, server }
}

fn td(s: &str) -> TrustDomain {
    TrustDomain::parse(s).unwrap()
}

fn auth(p: &Pki, mode: ClientAuthMode) -> ClientAuthConfig {
    ClientAuthConfig {
        roots: vec![p.root.cert_der()],
        crls: Vec::new(),
        mode,
        spiffe_trust_domains: vec![td("example.org")],
    }
}

fn server(p: &Pki, auth: &ClientAuthConfig) -> Arc<ServerConfig> {
    server_config(
        vec![p.server.certificate_der(), p.int.cert_der()],
        p.server.private_key_der(),
        auth,
    )
    .unwrap()
}

/// A client identity: its chain (leaf first) and key.
type ClientCert = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn chain(p: &Pki, leaf: &CertifiedKey) -> ClientCert {
    (
        vec![leaf.certificate_der(), p.int.cert_der()],
        leaf.private_key_der(),
    )
}

struct ClientOpts {
    cert: Option<ClientCert>,
    versions: Vec<&'static rustls::SupportedProtocolVersion>,
    alpn: Vec<&'static [u8]>,
}

impl Default for ClientOpts {
    fn default() -> Self {
        Self {
            cert: None,
            versions: vec![&TLS13, &TLS12],
            alpn: vec![b"h2", b"http/1.1"],
        }
    }
}

fn client(p: &Pki, opts: ClientOpts) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(p.root.cert_der()).unwrap();
    let builder = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&opts.versions)
    .unwrap()
    .with_root_certificates(roots);
    let mut cfg = match opts.cert {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = opts.alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

/// What the server saw of a successful handshake.
#[derive(Debug)]
struct Accepted {
    peer: Option<Vec<CertificateDer<'static>>>,
    alpn: Option<Vec<u8>>,
    version: Option<ProtocolVersion>,
    kind: Option<HandshakeKind>,
}

struct Outcome {
    server: Result<Accepted, io::Error>,
    client: Result<Vec<u8>, io::Error>,
}

async fn listen(
    cfg: Arc<ServerConfig>,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<Result<Accepted, io::Error>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut tls = TlsAcceptor::from(cfg).accept(tcp).await?;
        let (_, conn) = tls.get_ref();
        let accepted = Accepted {
            peer: conn.peer_certificates().map(|c| c.to_vec()),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            version: conn.protocol_version(),
            kind: conn.handshake_kind(),
        };
        tls.write_all(b"ok").await?;
        tls.shutdown().await?;
        Ok(accepted)
    });
    (addr, task)
}

async fn handshake(server: Arc<ServerConfig>, client: Arc<ClientConfig>) -> Outcome {
    let (addr, task) = listen(server).await;
    let client = async move {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = TlsConnector::from(client).connect(name, tcp).await?;
        let mut got = Vec::new();
        tls.read_to_end(&mut got).await?;
        Ok(got)
    }
    .await;
    Outcome {
        server: task.await.unwrap(),
        client,
    }
}

/// Asserts that the server refused the handshake with `reason`, that the
/// client saw a failure too, and returns the server's error.
fn refused(outcome: Outcome, reason: &str) -> io::Error {
    let err = match outcome.server {
        Ok(a) => panic!("server accepted: {a:?}"),
        Err(e) => e,
    };
    assert_eq!(classify_handshake_error(&err), reason, "{err}");
    assert!(outcome.client.is_err(), "client did not see the failure");
    err
}

fn accepted(outcome: Outcome) -> Accepted {
    let a = match outcome.server {
        Ok(a) => a,
        Err(e) => panic!("server refused: {e} ({})", classify_handshake_error(&e)),
    };
    assert_eq!(outcome.client.unwrap(), b"ok");
    a
}

fn identity_error(err: &io::Error) -> IdentityError {
    let rustls_err = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .expect("a rustls error");
    ClientVerifier::identity_error(rustls_err)
        .expect("an identity error")
        .clone()
}

fn spiffe(s: &str) -> Option<SpiffeId> {
    Some(SpiffeId::parse(s).unwrap())
}

fn crl(ca: &Ca, revoked: &[Vec<u8>]) -> CertificateRevocationListDer<'static> {
    let pem = ca.crl(revoked, Duration::from_secs(3600)).unwrap();
    CertificateRevocationListDer::from_pem_slice(pem.as_bytes()).unwrap()
}

#[tokio::test]
async fn valid_client_chain_is_accepted_and_identity_extracted() {
    let p = pki();
    let leaf = p
        .int
        .issue(&IssueRequest {
            organization: Some("Example".into()),
            organizational_unit: Some("Payments".into()),
            spiffe_id: spiffe("spiffe://example.org/ns/prod/sa/web"),
            dns: vec!["web.example.org".into()],
            emails: vec!["web@example.org".into()],
            ..IssueRequest::client("web")
        })
        .unwrap();
    let cfg = auth(&p, ClientAuthMode::Required);
    let a = accepted(
        handshake(
            server(&p, &cfg),
            client(
                &p,
                ClientOpts {
                    cert: Some(chain(&p, &leaf)),
                    ..ClientOpts::default()
                },
            ),
        )
        .await,
    );
    let peer = a.peer.unwrap();
    assert_eq!(peer, [leaf.certificate_der(), p.int.cert_der()]);
    let id = identity_from_chain(&peer, &cfg.spiffe_trust_domains).unwrap();
    let sha = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &leaf.cert_der);
    assert_eq!(
        id,
        CertIdentity {
            spiffe_id: spiffe("spiffe://example.org/ns/prod/sa/web"),
            subject: "OU=Payments,O=Example,CN=web".into(),
            issuer: "CN=Portcullis Test Intermediate".into(),
            subject_attrs: vec![
                ("CN".into(), "web".into()),
                ("O".into(), "Example".into()),
                ("OU".into(), "Payments".into()),
            ],
            dns_sans: vec!["web.example.org".into()],
            email_sans: vec!["web@example.org".into()],
            thumbprint: Thumbprint(sha.as_ref().try_into().unwrap()),
        }
    );
    assert_eq!(id.thumbprint.to_hex().len(), 64);
}

#[tokio::test]
async fn plain_certificate_is_an_identity_without_spiffe_id() {
    let p = pki();
    let leaf = p.int.issue(&IssueRequest::client("batch-job")).unwrap();
    let cfg = auth(&p, ClientAuthMode::Required);
    let a = accepted(
        handshake(
            server(&p, &cfg),
            client(
                &p,
                ClientOpts {
                    cert: Some(chain(&p, &leaf)),
                    ..ClientOpts::default()
                },
            ),
        )
        .await,
    );
    let id = identity_from_chain(&a.peer.unwrap(), &cfg.spiffe_trust_domains).unwrap();
    assert_eq!(id.spiffe_id, None);
    assert_eq!(id.subject, "CN=batch-job");
}

async fn with_client_cert(p: &Pki, cfg: &ClientAuthConfig, leaf: &CertifiedKey) -> Outcome {
    handshake(
        server(p, cfg),
        client(
            p,
            ClientOpts {
                cert: Some(chain(p, leaf)),
                ..ClientOpts::default()
            },
        ),
    )
    .await
}

#[tokio::test]
async fn unknown_ca_is_refused() {
    let p = pki();
    let other_root = Ca::new_root("Other Root").unwrap();
    let other_int = other_root.new_intermediate("Other Int").unwrap();
    let leaf = other_int.issue(&IssueRequest::client("intruder")).unwrap();
    let cert = (
        vec![leaf.certificate_der(), other_int.cert_der()],
        leaf.private_key_der(),
    );
    let out = handshake(
        server(&p, &auth(&p, ClientAuthMode::Required)),
        client(
            &p,
            ClientOpts {
                cert: Some(cert),
                ..ClientOpts::default()
            },
        ),
    )
    .await;
    refused(out, "unknown_ca");
}

#[tokio::test]
async fn forged_issuer_name_is_a_bad_signature() {
    let p = pki();
    let fake_root = Ca::new_root("Portcullis Test Root").unwrap();
    // Same subject as the real root, different key: the signature decides.
    let leaf = fake_root.issue(&IssueRequest::client("mallory")).unwrap();
    let cert = (vec![leaf.certificate_der()], leaf.private_key_der());
    let out = handshake(
        server(&p, &auth(&p, ClientAuthMode::Required)),
        client(
            &p,
            ClientOpts {
                cert: Some(cert),
                ..ClientOpts::default()
            },
        ),
    )
    .await;
    refused(out, "bad_signature");
}

#[tokio::test]
async fn expired_client_cert_is_refused() {
    let p = pki();
    let now = SystemTime::now();
    let leaf = p
        .int
        .issue(&IssueRequest {
            not_before: now - Duration::from_secs(10 * 86_400),
            not_after: now - Duration::from_secs(86_400),
            ..IssueRequest::client("old")
        })
        .unwrap();
    let out = with_client_cert(&p, &auth(&p, ClientAuthMode::Required), &leaf).await;
    refused(out, "expired");
}

#[tokio::test]
async fn not_yet_valid_client_cert_is_refused() {
    let p = pki();
    let now = SystemTime::now();
    let leaf = p
        .int
        .issue(&IssueRequest {
            not_before: now + Duration::from_secs(86_400),
            not_after: now + Duration::from_secs(10 * 86_400),
            ..IssueRequest::client("future")
        })
        .unwrap();
    let out = with_client_cert(&p, &auth(&p, ClientAuthMode::Required), &leaf).await;
    refused(out, "not_yet_valid");
}

#[tokio::test]
async fn revoked_cert_is_refused_and_others_pass_with_the_crl_loaded() {
    let p = pki();
    let good = p.int.issue(&IssueRequest::client("good")).unwrap();
    let bad = p.int.issue(&IssueRequest::client("bad")).unwrap();
    let mut cfg = auth(&p, ClientAuthMode::Required);
    cfg.crls = vec![
        crl(&p.int, std::slice::from_ref(&bad.serial)),
        crl(&p.root, &[]),
    ];
    accepted(with_client_cert(&p, &cfg, &good).await);
    refused(with_client_cert(&p, &cfg, &bad).await, "revoked");
}

#[tokio::test]
async fn revoked_intermediate_refuses_its_leaves() {
    let p = pki();
    let leaf = p.int.issue(&IssueRequest::client("x")).unwrap();
    let int_serial = portcullis_pki::cert_serial(p.int.cert_pem()).unwrap();
    let mut cfg = auth(&p, ClientAuthMode::Required);
    cfg.crls = vec![crl(&p.int, &[]), crl(&p.root, &[int_serial])];
    refused(with_client_cert(&p, &cfg, &leaf).await, "revoked");
}

#[tokio::test]
async fn missing_crl_for_an_issuer_is_refused() {
    let p = pki();
    let leaf = p.int.issue(&IssueRequest::client("x")).unwrap();
    let mut cfg = auth(&p, ClientAuthMode::Required);
    cfg.crls = vec![crl(&p.int, &[])];
    refused(
        with_client_cert(&p, &cfg, &leaf).await,
        "revocation_unknown",
    );
}

#[tokio::test]
async fn no_client_cert_is_refused_when_required() {
    let p = pki();
    let out = handshake(
        server(&p, &auth(&p, ClientAuthMode::Required)),
        client(&p, ClientOpts::default()),
    )
    .await;
    refused(out, "no_client_cert");
}

#[tokio::test]
async fn no_client_cert_is_anonymous_when_optional() {
    let p = pki();
    let a = accepted(
        handshake(
            server(&p, &auth(&p, ClientAuthMode::Optional)),
            client(&p, ClientOpts::default()),
        )
        .await,
    );
    assert!(a.peer.is_none());
}

#[tokio::test]
async fn optional_mode_still_refuses_a_bad_certificate() {
    let p = pki();
    let other = Ca::new_root("Other Root").unwrap();
    let leaf = other.issue(&IssueRequest::client("x")).unwrap();
    let out = handshake(
        server(&p, &auth(&p, ClientAuthMode::Optional)),
        client(
            &p,
            ClientOpts {
                cert: Some((vec![leaf.certificate_der()], leaf.private_key_der())),
                ..ClientOpts::default()
            },
        ),
    )
    .await;
    refused(out, "unknown_ca");
}

#[tokio::test]
async fn optional_mode_accepts_a_valid_certificate() {
    let p = pki();
    let leaf = p.int.issue(&IssueRequest::client("x")).unwrap();
    let a = accepted(with_client_cert(&p, &auth(&p, ClientAuthMode::Optional), &leaf).await);
    assert_eq!(a.peer.unwrap().len(), 2);
}

async fn svid_refused(req: IssueRequest, tds: Vec<TrustDomain>) -> IdentityError {
    let p = pki();
    let leaf = p.int.issue(&req).unwrap();
    let mut cfg = auth(&p, ClientAuthMode::Required);
    cfg.spiffe_trust_domains = tds;
    let err = refused(with_client_cert(&p, &cfg, &leaf).await, "bad_svid");
    identity_error(&err)
}

#[tokio::test]
async fn two_uri_sans_are_refused() {
    let err = svid_refused(
        IssueRequest {
            spiffe_id: spiffe("spiffe://example.org/a"),
            extra_uri_sans: vec!["spiffe://example.org/b".into()],
            ..IssueRequest::client("x")
        },
        vec![td("example.org")],
    )
    .await;
    assert_eq!(err, IdentityError::UriSanCount { count: 2 });
}

#[tokio::test]
async fn non_spiffe_uri_san_is_refused() {
    let err = svid_refused(
        IssueRequest {
            extra_uri_sans: vec!["https://example.org/web".into()],
            ..IssueRequest::client("x")
        },
        vec![td("example.org")],
    )
    .await;
    assert_eq!(err.reason_code(), "svid_invalid_spiffe_id");
}

#[tokio::test]
async fn wrong_trust_domain_is_refused() {
    let err = svid_refused(
        IssueRequest {
            spiffe_id: spiffe("spiffe://evil.example/web"),
            ..IssueRequest::client("x")
        },
        vec![td("example.org")],
    )
    .await;
    assert_eq!(err.reason_code(), "svid_untrusted_trust_domain");
}

#[tokio::test]
async fn uri_san_without_configured_trust_domain_is_refused() {
    let err = svid_refused(
        IssueRequest {
            spiffe_id: spiffe("spiffe://example.org/web"),
            ..IssueRequest::client("x")
        },
        Vec::new(),
    )
    .await;
    assert_eq!(err.reason_code(), "svid_no_trust_domains");
}

#[tokio::test]
async fn svid_with_signing_key_usage_is_refused() {
    let err = svid_refused(
        IssueRequest {
            spiffe_id: spiffe("spiffe://example.org/web"),
            cert_sign_usage: true,
            ..IssueRequest::client("x")
        },
        vec![td("example.org")],
    )
    .await;
    assert_eq!(err.reason_code(), "svid_signing_key_usage");
}

#[tokio::test]
async fn ca_leaf_with_spiffe_id_is_refused() {
    let p = pki();
    let leaf = p
        .int
        .issue(&IssueRequest {
            spiffe_id: spiffe("spiffe://example.org/web"),
            is_ca: true,
            ..IssueRequest::client("x")
        })
        .unwrap();
    // Path validation refuses a CA certificate as end entity before the
    // SVID rules run (which would refuse it too: see the identity tests).
    let err = refused(
        with_client_cert(&p, &auth(&p, ClientAuthMode::Required), &leaf).await,
        "bad_certificate",
    );
    assert!(err.to_string().contains("CaUsedAsEndEntity"), "{err}");
}

#[tokio::test]
async fn server_auth_only_leaf_is_refused() {
    let p = pki();
    let leaf = p
        .int
        .issue(&IssueRequest {
            usage: Usage::Server,
            ..IssueRequest::client("x")
        })
        .unwrap();
    refused(
        with_client_cert(&p, &auth(&p, ClientAuthMode::Required), &leaf).await,
        "bad_eku",
    );
}

#[tokio::test]
async fn leaf_for_both_usages_is_accepted() {
    let p = pki();
    let leaf = p
        .int
        .issue(&IssueRequest {
            usage: Usage::Both,
            ..IssueRequest::client("x")
        })
        .unwrap();
    accepted(with_client_cert(&p, &auth(&p, ClientAuthMode::Required), &leaf).await);
}

#[tokio::test]
async fn leaf_without_eku_extension_is_accepted() {
    // RFC 5280 4.2.1.12: no EKU extension means no restriction.
    let p = pki();
    let issuer = rcgen::Issuer::from_ca_cert_pem(
        p.int.cert_pem(),
        rcgen::KeyPair::from_pem(&p.int.key_pem()).unwrap(),
    )
    .unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "no-eku");
    params.not_before = (SystemTime::now() - Duration::from_secs(3600)).into();
    params.not_after = (SystemTime::now() + Duration::from_secs(86_400)).into();
    params.use_authority_key_identifier_extension = true;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let client_cert = (
        vec![cert.der().clone(), p.int.cert_der()],
        PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    );
    let cfg = auth(&p, ClientAuthMode::Required);
    let a = accepted(
        handshake(
            server(&p, &cfg),
            client(
                &p,
                ClientOpts {
                    cert: Some(client_cert),
                    ..ClientOpts::default()
                },
            ),
        )
        .await,
    );
    let id = identity_from_chain(&a.peer.unwrap(), &cfg.spiffe_trust_domains).unwrap();
    assert_eq!(id.subject, "CN=no-eku");
}

async fn version(
    p: &Pki,
    leaf: &CertifiedKey,
    v: &'static rustls::SupportedProtocolVersion,
) -> Accepted {
    accepted(
        handshake(
            server(p, &auth(p, ClientAuthMode::Required)),
            client(
                p,
                ClientOpts {
                    cert: Some(chain(p, leaf)),
                    versions: vec![v],
                    ..ClientOpts::default()
                },
            ),
        )
        .await,
    )
}

#[tokio::test]
async fn tls12_and_tls13_both_negotiate_with_client_auth() {
    let p = pki();
    let leaf = p.int.issue(&IssueRequest::client("x")).unwrap();
    let a12 = version(&p, &leaf, &TLS12).await;
    assert_eq!(a12.version, Some(ProtocolVersion::TLSv1_2));
    assert!(a12.peer.is_some());
    let a13 = version(&p, &leaf, &TLS13).await;
    assert_eq!(a13.version, Some(ProtocolVersion::TLSv1_3));
    assert!(a13.peer.is_some());
}

#[tokio::test]
async fn tls12_client_with_bad_certificate_is_refused() {
    let p = pki();
    let now = SystemTime::now();
    let leaf = p
        .int
        .issue(&IssueRequest {
            not_before: now - Duration::from_secs(10 * 86_400),
            not_after: now - Duration::from_secs(86_400),
            ..IssueRequest::client("old")
        })
        .unwrap();
    let out = handshake(
        server(&p, &auth(&p, ClientAuthMode::Required)),
        client(
            &p,
            ClientOpts {
                cert: Some(chain(&p, &leaf)),
                versions: vec![&TLS12],
                ..ClientOpts::default()
            },
        ),
    )
    .await;
    refused(out, "expired");
}

async fn alpn(p: &Pki, offered: Vec<&'static [u8]>) -> Outcome {
    handshake(
        server(p, &auth(p, ClientAuthMode::Optional)),
        client(
            p,
            ClientOpts {
                alpn: offered,
                ..ClientOpts::default()
            },
        ),
    )
    .await
}

#[tokio::test]
async fn alpn_negotiates_h2_and_http11() {
    let p = pki();
    let a = accepted(alpn(&p, vec![b"h2", b"http/1.1"]).await);
    assert_eq!(a.alpn.as_deref(), Some(&b"h2"[..]));
    let a = accepted(alpn(&p, vec![b"http/1.1"]).await);
    assert_eq!(a.alpn.as_deref(), Some(&b"http/1.1"[..]));
    let a = accepted(alpn(&p, vec![b"http/1.1", b"h2"]).await);
    assert!(a.alpn.is_some());
    let a = accepted(alpn(&p, Vec::new()).await);
    assert_eq!(a.alpn, None);
}

#[tokio::test]
async fn unknown_alpn_protocol_is_refused() {
    let p = pki();
    refused(alpn(&p, vec![b"spdy/3"]).await, "no_alpn");
}

#[tokio::test]
async fn sessions_are_never_resumed() {
    let p = pki();
    let leaf = p.int.issue(&IssueRequest::client("x")).unwrap();
    let srv = server(&p, &auth(&p, ClientAuthMode::Required));
    for version in [&TLS13, &TLS12] {
        // One client config per version: its session cache would resume
        // the second connection if the server allowed it.
        let cli = client(
            &p,
            ClientOpts {
                cert: Some(chain(&p, &leaf)),
                versions: vec![version],
                ..ClientOpts::default()
            },
        );
        for _ in 0..2 {
            let a = accepted(handshake(srv.clone(), cli.clone()).await);
            assert_eq!(a.kind, Some(HandshakeKind::Full));
            assert!(a.peer.is_some());
        }
    }
}

async fn raw_client(cfg: Arc<ServerConfig>, bytes: &'static [u8]) -> io::Error {
    let (addr, task) = listen(cfg).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    tcp.shutdown().await.unwrap();
    let mut sink = Vec::new();
    // The server answers with an alert (or nothing) and closes.
    let _ = tcp.read_to_end(&mut sink).await;
    task.await.unwrap().unwrap_err()
}

#[tokio::test]
async fn tls11_only_client_is_an_unsupported_version() {
    let p = pki();
    // A ClientHello offering TLS 1.1 only (no supported_versions
    // extension) with one cipher suite, null compression and a
    // signature_algorithms extension.
    const HELLO: &[u8] = &[
        0x16, 0x03, 0x01, 0x00, 0x37, // record: handshake, 55 bytes
        0x01, 0x00, 0x00, 0x33, // ClientHello, 51 bytes
        0x03, 0x02, // client_version TLS 1.1
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
        26, 27, 28, 29, 30, 31, 32,   // random
        0x00, // session id
        0x00, 0x02, 0x00, 0x2f, // cipher suites: TLS_RSA_WITH_AES_128_CBC_SHA
        0x01, 0x00, // compression: null
        0x00, 0x08, // extensions, 8 bytes
        0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04,
        0x03, // signature_algorithms: ecdsa p256 sha256
    ];
    let err = raw_client(server(&p, &auth(&p, ClientAuthMode::Required)), HELLO).await;
    assert_eq!(
        classify_handshake_error(&err),
        "unsupported_version",
        "{err}"
    );
}

#[tokio::test]
async fn plain_http_is_a_protocol_error() {
    let p = pki();
    let err = raw_client(
        server(&p, &auth(&p, ClientAuthMode::Required)),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(classify_handshake_error(&err), "protocol_error", "{err}");
}

#[tokio::test]
async fn closed_connection_is_eof() {
    let p = pki();
    let err = raw_client(server(&p, &auth(&p, ClientAuthMode::Required)), b"").await;
    assert_eq!(classify_handshake_error(&err), "eof", "{err}");
}

#[tokio::test]
async fn client_rejecting_the_server_is_a_peer_alert() {
    let p = pki();
    // The client trusts another root, so it refuses the server's chain.
    let other = Ca::new_root("Other Root").unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(other.cert_der()).unwrap();
    let cli = Arc::new(
        ClientConfig::builder_with_provider(
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let out = handshake(server(&p, &auth(&p, ClientAuthMode::Optional)), cli).await;
    refused(out, "peer_alert");
}

#[tokio::test]
async fn upstream_config_connects_and_verifies_the_server() {
    let p = pki();
    let srv = server(&p, &auth(&p, ClientAuthMode::Optional));
    let good = upstream_client_config(vec![p.root.cert_der()]).unwrap();
    let a = accepted(handshake(srv.clone(), good).await);
    assert_eq!(a.alpn.as_deref(), Some(&b"h2"[..]));
    assert!(a.peer.is_none());

    let other = Ca::new_root("Other Root").unwrap();
    let bad = upstream_client_config(vec![other.cert_der()]).unwrap();
    let out = handshake(srv, bad).await;
    let client_err = out.client.as_ref().unwrap_err();
    let inner = client_err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .unwrap();
    assert_eq!(
        inner,
        &rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
    );
    assert!(out.server.is_err());
}
