//! x509-limbo conformance of the client certificate verifier.
//!
//! Runs every x509-limbo case that applies to client authentication
//! through the verifier the gateway installs ([`client_verifier`], the
//! same one `server_config` uses) and compares the outcome with the
//! case's expected result. Known deviations are listed, with a reason, in
//! `limbo-deviations.txt`; the test fails on a deviation that is not
//! listed and on a listed one that no longer deviates.
//!
//! Selection:
//! - every `validation_kind: CLIENT` case;
//! - every `SERVER` case whose leaf could be a client certificate: it has
//!   no extended key usage extension, or one that includes `clientAuth`.
//!   Such a case is run as a client certificate check: its
//!   `extended_key_usage` requirement (serverAuth) is replaced by the
//!   verifier's own (clientAuth when an EKU is present), and the
//!   hostname check (`expected_peer_name`) does not apply, since a server
//!   does not match a client certificate against a name.
//!
//! The validation time is the case's `validation_time`, or when that is
//! null a fixed time ([`DEFAULT_TIME`]) if the leaf is valid then, else
//! the middle of the leaf's validity period. No SPIFFE trust domain is
//! configured, so a leaf with a URI SAN is refused.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "helpers outside #[test] functions fail the test on any setup error"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use portcullis_authn::{client_verifier, ClientAuthConfig, ClientAuthMode};
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry::OID_X509_EXT_EXTENDED_KEY_USAGE;
use x509_parser::prelude::{FromDer, X509Certificate};

/// 2025-01-01T00:00:00Z: the validation time for cases without one.
const DEFAULT_TIME: u64 = 1_735_689_600;

const ENV_VAR: &str = "PORTCULLIS_LIMBO_JSON";

#[derive(serde::Deserialize)]
struct Limbo {
    version: u32,
    testcases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    id: String,
    #[serde(default)]
    features: Vec<String>,
    validation_kind: String,
    trusted_certs: Vec<String>,
    #[serde(default)]
    untrusted_intermediates: Vec<String>,
    peer_certificate: String,
    validation_time: Option<String>,
    expected_result: String,
    #[serde(default)]
    crls: Vec<String>,
}

fn limbo_path() -> PathBuf {
    if let Some(p) = std::env::var_os(ENV_VAR) {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance/x509-limbo/limbo.json")
}

fn load() -> Limbo {
    let path = limbo_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the x509-limbo suite is needed for this test but `{}` cannot be read ({e}); \
             set {ENV_VAR} to the path of limbo.json",
            path.display()
        )
    });
    let limbo: Limbo = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("`{}` is not an x509-limbo suite: {e}", path.display()));
    assert_eq!(limbo.version, 1, "unsupported limbo.json version");
    assert!(!limbo.testcases.is_empty(), "limbo.json holds no test case");
    limbo
}

/// `Ok` when the case applies to client authentication, else why not.
fn applies(case: &Case) -> Result<(), &'static str> {
    match case.validation_kind.as_str() {
        "CLIENT" => return Ok(()),
        "SERVER" => {}
        _ => return Err("unknown validation kind"),
    }
    let der = CertificateDer::from_pem_slice(case.peer_certificate.as_bytes())
        .map_err(|_| "leaf pem cannot be read")?;
    let (_, cert) =
        X509Certificate::from_der(&der).map_err(|_| "leaf cannot be parsed to read its eku")?;
    let eku = cert
        .get_extension_unique(&OID_X509_EXT_EXTENDED_KEY_USAGE)
        .map_err(|_| "leaf has duplicate eku extensions")?;
    match eku.map(|e| e.parsed_extension()) {
        None => Ok(()),
        Some(ParsedExtension::ExtendedKeyUsage(eku)) if eku.client_auth => Ok(()),
        Some(ParsedExtension::ExtendedKeyUsage(_)) => {
            Err("server-only leaf: eku without clientAuth")
        }
        Some(_) => Err("leaf eku extension cannot be parsed"),
    }
}

fn validation_time(case: &Case, leaf: &CertificateDer<'_>) -> UnixTime {
    if let Some(t) = &case.validation_time {
        let ts: jiff::Timestamp = t
            .parse()
            .unwrap_or_else(|e| panic!("{}: bad validation_time `{t}`: {e}", case.id));
        let secs = u64::try_from(ts.as_second()).expect("validation time after 1970");
        return UnixTime::since_unix_epoch(Duration::from_secs(secs));
    }
    let secs = match X509Certificate::from_der(leaf) {
        Ok((_, cert)) => {
            let from = cert.validity().not_before.timestamp();
            let to = cert.validity().not_after.timestamp();
            let default = i64::try_from(DEFAULT_TIME).unwrap();
            if (from..=to).contains(&default) {
                default
            } else {
                from + (to - from) / 2
            }
        }
        Err(_) => i64::try_from(DEFAULT_TIME).unwrap(),
    };
    UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(secs.max(0)).unwrap()))
}

/// Runs one case: `Ok(())` when the chain validated, else the reason.
fn run(case: &Case) -> Result<(), String> {
    let certs = |pems: &[String]| {
        pems.iter()
            .map(|p| {
                CertificateDer::from_pem_slice(p.as_bytes())
                    .map_err(|e| format!("certificate pem cannot be read: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let roots = certs(&case.trusted_certs)?;
    let intermediates = certs(&case.untrusted_intermediates)?;
    let leaf = CertificateDer::from_pem_slice(case.peer_certificate.as_bytes())
        .map_err(|e| format!("leaf pem cannot be read: {e}"))?;
    let crls = case
        .crls
        .iter()
        .map(|p| {
            CertificateRevocationListDer::from_pem_slice(p.as_bytes())
                .map_err(|e| format!("crl pem cannot be read: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let config = ClientAuthConfig {
        roots,
        crls,
        mode: ClientAuthMode::Required,
        spiffe_trust_domains: Vec::new(),
    };
    let verifier = client_verifier(&config).map_err(|e| format!("configuration refused: {e}"))?;
    let now = validation_time(case, &leaf);
    verifier
        .verify_client_cert(&leaf, &intermediates, now)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn deviations_file() -> BTreeMap<String, String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/limbo-deviations.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read `{}`: {e}", path.display()));
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (id, why) = line.split_once(char::is_whitespace).unwrap_or_else(|| {
            panic!(
                "limbo-deviations.txt:{}: needs `<id> <justification>`",
                n + 1
            )
        });
        assert!(
            !why.trim().is_empty(),
            "limbo-deviations.txt:{}: `{id}` has no justification",
            n + 1
        );
        assert!(
            out.insert(id.to_owned(), why.trim().to_owned()).is_none(),
            "limbo-deviations.txt:{}: `{id}` is listed twice",
            n + 1
        );
    }
    out
}

#[test]
fn limbo_client_authentication_conformance() {
    let limbo = load();
    let known = deviations_file();

    let mut not_applicable: BTreeMap<&str, usize> = BTreeMap::new();
    let mut applied = 0usize;
    let mut passed = 0usize;
    let mut deviating: BTreeMap<String, String> = BTreeMap::new();
    let mut client_cases = 0usize;

    for case in &limbo.testcases {
        if let Err(why) = applies(case) {
            *not_applicable.entry(why).or_default() += 1;
            continue;
        }
        applied += 1;
        if case.validation_kind == "CLIENT" {
            client_cases += 1;
        }
        let outcome = run(case);
        let actual = if outcome.is_ok() {
            "SUCCESS"
        } else {
            "FAILURE"
        };
        if actual == case.expected_result {
            passed += 1;
        } else {
            let detail = match outcome {
                Ok(()) => "accepted".to_owned(),
                Err(e) => format!("refused: {e}"),
            };
            deviating.insert(
                case.id.clone(),
                format!(
                    "expected {}, got {actual} ({detail}); features {:?}",
                    case.expected_result, case.features
                ),
            );
        }
    }

    println!(
        "x509-limbo: {applied} cases applied, {passed} passed, {} known deviations",
        deviating
            .keys()
            .filter(|id| known.contains_key(*id))
            .count()
    );
    println!("  of which validation_kind CLIENT: {client_cases}");
    for (why, n) in &not_applicable {
        println!("  not applicable ({why}): {n}");
    }
    for (id, detail) in &deviating {
        let note = known.get(id).map(String::as_str).unwrap_or("NOT LISTED");
        println!("  deviation {id}: {detail} -- {note}");
    }

    let unlisted: Vec<_> = deviating
        .iter()
        .filter(|(id, _)| !known.contains_key(*id))
        .map(|(id, d)| format!("{id}: {d}"))
        .collect();
    let deviating_ids: BTreeSet<_> = deviating.keys().collect();
    let stale: Vec<_> = known
        .keys()
        .filter(|id| !deviating_ids.contains(id))
        .collect();
    assert!(
        unlisted.is_empty(),
        "deviations not listed in limbo-deviations.txt:\n{}",
        unlisted.join("\n")
    );
    assert!(
        stale.is_empty(),
        "listed in limbo-deviations.txt but no longer deviating (remove them): {stale:?}"
    );
    assert!(client_cases > 0, "no CLIENT case in the suite");
    assert_eq!(applied, passed + deviating.len());
}
