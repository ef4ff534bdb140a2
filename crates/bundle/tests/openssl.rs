//! Interoperability with the `openssl` command line: signatures made by
//! `openssl dgst -sha256 -sign key.pem manifest.json | base64` verify, and
//! openssl verifies ours.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions"
)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use portcullis_bundle::{SigAlg, SigningKey, TrustRoot};

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn sh(dir: &Path, script: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn root_with_pem(id: &str, alg: SigAlg, public_key: String) -> TrustRoot {
    TrustRoot::create(
        1,
        1,
        &[portcullis_bundle::RootKeySpec {
            id: id.to_owned(),
            alg,
            public_key,
            not_before: ts("2024-01-01T00:00:00Z"),
            not_after: ts("2030-01-01T00:00:00Z"),
        }],
    )
    .unwrap()
}

#[test]
fn openssl_ecdsa_signature_verifies() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    openssl(
        dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "k.pem",
        ],
    );
    let public = String::from_utf8(openssl(dir, &["ec", "-in", "k.pem", "-pubout"])).unwrap();

    let mut b = bundle(3);
    std::fs::write(dir.join("manifest.json"), b.manifest_bytes()).unwrap();
    let b64 = sh(
        dir,
        "openssl dgst -sha256 -sign k.pem manifest.json | base64",
    );
    assert!(
        b64.lines().count() >= 2,
        "base64 wraps the DER signature: {b64:?}"
    );
    b.add_signature_base64("ops-1", &b64).unwrap();

    let r = root_with_pem("ops-1", SigAlg::EcdsaP256, public);
    assert_eq!(r.verify(&b, now()).unwrap().signers, ["ops-1"]);

    // The same signature file, as a gateway reads it from an archive.
    let mut entries = unpack(&b.to_tar().unwrap());
    entries.insert("signatures/ops-1.sig".into(), b64.into_bytes());
    let from_archive = load(&pack_map(&entries)).unwrap();
    assert_eq!(r.verify(&from_archive, now()).unwrap().signers, ["ops-1"]);

    // And it does not verify another manifest.
    let mut other = bundle(4);
    other
        .add_signature("ops-1", b.signatures().next().unwrap().1.to_vec())
        .unwrap();
    assert_eq!(
        r.verify(&other, now()).unwrap_err().reason(),
        "bad_signature"
    );
}

#[test]
fn openssl_sec1_and_pkcs8_keys_load_and_openssl_verifies_our_signatures() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    openssl(
        dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-out",
            "sec1.pem",
        ],
    );
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "p8.pem",
        ],
    );
    for file in ["sec1.pem", "p8.pem"] {
        let pem = std::fs::read_to_string(dir.join(file)).unwrap();
        let key = SigningKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(key.alg(), SigAlg::EcdsaP256, "{file}");
        let public = String::from_utf8(openssl(dir, &["pkey", "-in", file, "-pubout"])).unwrap();
        assert_eq!(key.public_key_pem(), public, "{file}");

        let b = bundle(3);
        std::fs::write(dir.join("manifest.json"), b.manifest_bytes()).unwrap();
        std::fs::write(dir.join("sig.der"), key.sign(b.manifest_bytes()).unwrap()).unwrap();
        std::fs::write(dir.join("pub.pem"), &public).unwrap();
        let out = openssl(
            dir,
            &[
                "dgst",
                "-sha256",
                "-verify",
                "pub.pem",
                "-signature",
                "sig.der",
                "manifest.json",
            ],
        );
        assert_eq!(
            String::from_utf8(out).unwrap().trim(),
            "Verified OK",
            "{file}"
        );
    }
}

#[test]
fn openssl_ed25519_signature_verifies() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    openssl(dir, &["genpkey", "-algorithm", "ed25519", "-out", "ed.pem"]);
    let public = String::from_utf8(openssl(dir, &["pkey", "-in", "ed.pem", "-pubout"])).unwrap();
    let mut b = bundle(3);
    std::fs::write(dir.join("manifest.json"), b.manifest_bytes()).unwrap();
    let b64 = sh(
        dir,
        "openssl pkeyutl -sign -rawin -inkey ed.pem -in manifest.json | base64",
    );
    b.add_signature_base64("ed-1", &b64).unwrap();
    let r = root_with_pem("ed-1", SigAlg::Ed25519, public.clone());
    assert_eq!(r.verify(&b, now()).unwrap().signers, ["ed-1"]);

    // The openssl key loads here and signs identically (Ed25519 is
    // deterministic).
    let key =
        SigningKey::from_pkcs8_pem(&std::fs::read_to_string(dir.join("ed.pem")).unwrap()).unwrap();
    assert_eq!(key.alg(), SigAlg::Ed25519);
    assert_eq!(key.public_key_pem(), public);
    assert_eq!(
        key.sign(b.manifest_bytes()).unwrap(),
        b.signatures().next().unwrap().1
    );
}

#[test]
fn our_keys_are_readable_by_openssl() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    for alg in [SigAlg::EcdsaP256, SigAlg::Ed25519] {
        let key = SigningKey::generate(alg).unwrap();
        std::fs::write(dir.join("ours.pem"), key.to_pkcs8_pem().as_bytes()).unwrap();
        let public =
            String::from_utf8(openssl(dir, &["pkey", "-in", "ours.pem", "-pubout"])).unwrap();
        assert_eq!(public, key.public_key_pem(), "{alg}");
    }
}
