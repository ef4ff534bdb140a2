//! `portcullis keys generate` and `portcullis bundle build|sign|verify|
//! inspect|root-sign`, run as an operator runs them, with `openssl` as the
//! independent implementation on the other side.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions (clippy.toml allows these in tests)"
)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;

const POLICY: &str = r#"revision: "bundle-1"
roles:
  reader: {}
  writer: { inherits: [reader] }
bindings:
  - { role: reader, spiffe_id: "spiffe://example.org/ns/test/sa/reader" }
  - { role: writer, spiffe_id: "spiffe://example.org/ns/test/sa/writer" }
rules:
  - { id: api-read, effect: allow, roles: [reader], route: api, methods: [GET, HEAD], path: "/api/**" }
  - { id: api-write, effect: allow, roles: [writer], route: api, methods: [POST, PUT, DELETE], path: "/api/**" }
  - { id: no-admin, effect: deny, route: api, path: "/api/admin/**" }
"#;

/// Validity window of the keys in most tests: open for a long time.
const ALWAYS: (&str, &str) = ("2020-01-01T00:00:00Z", "2100-01-01T00:00:00Z");
/// A fixed creation time, so builds are reproducible.
const CREATED: &str = "2025-06-01T12:00:00Z";

struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code,
            self.out(),
            self.stderr
        )
    }
}

fn portcullis(args: &[&str]) -> Run {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .env("PORTCULLIS_LOG", "warn")
        .output()
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs a shell pipeline in `dir` (for `openssl ... | base64`).
fn sh(dir: &Path, script: &str) -> Output {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`{script}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// A key made by `keys generate`: its file and the public key it printed.
struct Key {
    id: String,
    alg: &'static str,
    path: PathBuf,
    public_pem: String,
}

fn gen_key(dir: &Path, id: &str, alg: &'static str) -> Key {
    let path = dir.join(format!("{id}.pem"));
    let r = portcullis(&["keys", "generate", "--alg", alg, "--out", s(&path)]);
    assert_eq!(r.code, Some(0), "{r:?}");
    Key {
        id: id.to_owned(),
        alg,
        path,
        public_pem: r.out(),
    }
}

/// Trust-root JSON; each key with its validity window.
fn root_json(version: u64, threshold: usize, keys: &[(&Key, (&str, &str))]) -> String {
    let keys: Vec<_> = keys
        .iter()
        .map(|(k, (nb, na))| {
            serde_json::json!({
                "id": k.id, "alg": k.alg, "public_key": k.public_pem,
                "not_before": nb, "not_after": na,
            })
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({
        "format": "portcullis-trust-root-v1",
        "version": version,
        "threshold": threshold,
        "keys": keys,
    }))
    .unwrap()
}

fn write_root(dir: &Path, name: &str, json: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, json).unwrap();
    p
}

/// A bundle source directory: the policy and one extra file.
fn source_dir(dir: &Path, policy: &str) -> PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("tests")).unwrap();
    std::fs::write(src.join("policy.yaml"), policy).unwrap();
    std::fs::write(src.join("tests/readme.txt"), "policy tests go here\n").unwrap();
    src
}

fn build(src: &Path, out: &Path, revision: u64) -> Run {
    portcullis(&[
        "bundle",
        "build",
        s(src),
        "--revision",
        &revision.to_string(),
        "--out",
        s(out),
        "--created",
        CREATED,
    ])
}

fn sign(bundle: &Path, key: &Key) {
    let r = portcullis(&[
        "bundle",
        "sign",
        s(bundle),
        "--key",
        s(&key.path),
        "--key-id",
        &key.id,
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
}

fn verify(bundle: &Path, root: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["bundle", "verify", s(bundle), "--trust-root", s(root)];
    args.extend_from_slice(extra);
    portcullis(&args)
}

fn assert_refused(r: &Run, reason: &str) {
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(
        r.out().starts_with(&format!("refused ({reason}): ")),
        "expected reason `{reason}`: {r:?}"
    );
}

/// Three ECDSA keys and a 2-of-3 trust root (version 1) in `dir`.
struct Setup {
    dir: tempfile::TempDir,
    keys: Vec<Key>,
    root: PathBuf,
    src: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<Key> = ["ops-1", "ops-2", "ops-3"]
        .iter()
        .map(|id| gen_key(dir.path(), id, "ecdsa-p256"))
        .collect();
    let json = root_json(
        1,
        2,
        &[(&keys[0], ALWAYS), (&keys[1], ALWAYS), (&keys[2], ALWAYS)],
    );
    let root = write_root(dir.path(), "root.json", &json);
    let src = source_dir(dir.path(), POLICY);
    Setup {
        dir,
        keys,
        root,
        src,
    }
}

impl Setup {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Builds revision `rev` and signs it with the keys at `signers`.
    fn signed_bundle(&self, name: &str, rev: u64, signers: &[usize]) -> PathBuf {
        let out = self.path(name);
        let r = build(&self.src, &out, rev);
        assert_eq!(r.code, Some(0), "{r:?}");
        for &i in signers {
            sign(&out, &self.keys[i]);
        }
        out
    }
}

/// Replaces the only occurrence of `from` in the file by `to` (same length).
fn patch_file(path: &Path, from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut bytes = std::fs::read(path).unwrap();
    let hits: Vec<usize> = (0..=bytes.len() - from.len())
        .filter(|&i| &bytes[i..i + from.len()] == from)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "`{}` must occur once",
        String::from_utf8_lossy(from)
    );
    bytes[hits[0]..hits[0] + to.len()].copy_from_slice(to);
    std::fs::write(path, bytes).unwrap();
}

fn sha256_hex(bytes: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ------------------------------------------------------------ keys generate

#[test]
fn keys_generate_writes_a_0600_private_key_and_prints_the_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let r = portcullis(&["keys", "generate", "--alg", "ecdsa-p256", "--out", s(&key)]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(mode(&key), 0o600);
    let private = std::fs::read_to_string(&key).unwrap();
    assert!(
        private.starts_with("-----BEGIN PRIVATE KEY-----"),
        "{private}"
    );
    let public = r.out();
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"), "{r:?}");
    assert!(!public.contains("PRIVATE"), "{r:?}");
    // openssl derives the same public key from the private key file.
    let derived = sh(dir.path(), "openssl pkey -in k.pem -pubout");
    let squash = |t: &str| t.split_whitespace().collect::<String>();
    assert_eq!(
        squash(&String::from_utf8_lossy(&derived.stdout)),
        squash(&public)
    );
}

#[test]
fn keys_generate_ed25519_with_public_out_prints_nothing_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let public = dir.path().join("k.pub.pem");
    let r = portcullis(&[
        "keys",
        "generate",
        "--alg",
        "ed25519",
        "--out",
        s(&key),
        "--public-out",
        s(&public),
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
    assert_eq!(mode(&key), 0o600);
    let text = std::fs::read_to_string(&public).unwrap();
    assert!(text.starts_with("-----BEGIN PUBLIC KEY-----"), "{text}");
    let kind = sh(dir.path(), "openssl pkey -pubin -in k.pub.pem -noout -text");
    assert!(
        String::from_utf8_lossy(&kind.stdout).contains("ED25519"),
        "{kind:?}"
    );
}

#[test]
fn keys_generate_refuses_to_overwrite_an_existing_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    std::fs::write(&key, "precious").unwrap();
    let r = portcullis(&["keys", "generate", "--alg", "ed25519", "--out", s(&key)]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains("exists") && r.stderr.contains("--force"),
        "{r:?}"
    );
    assert_eq!(std::fs::read_to_string(&key).unwrap(), "precious");
}

#[test]
fn keys_generate_refuses_an_existing_public_out_before_writing_the_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let public = dir.path().join("k.pub.pem");
    std::fs::write(&public, "old").unwrap();
    let r = portcullis(&[
        "keys",
        "generate",
        "--alg",
        "ecdsa-p256",
        "--out",
        s(&key),
        "--public-out",
        s(&public),
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(!key.exists(), "no private key may be left behind");
    assert_eq!(std::fs::read_to_string(&public).unwrap(), "old");
}

#[test]
fn keys_generate_force_replaces_a_world_readable_file_with_a_0600_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    std::fs::write(&key, "old").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = portcullis(&[
        "keys",
        "generate",
        "--alg",
        "ecdsa-p256",
        "--out",
        s(&key),
        "--force",
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(mode(&key), 0o600);
    assert!(std::fs::read_to_string(&key)
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    // No temporary file is left beside it.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn keys_generate_refuses_an_unknown_algorithm() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let r = portcullis(&["keys", "generate", "--alg", "rsa-2048", "--out", s(&key)]);
    assert_eq!(r.code, Some(2), "clap usage error: {r:?}");
    assert!(r.stderr.contains("rsa-2048"), "{r:?}");
    assert!(!key.exists());
}

// ------------------------------------------------------------ build, sign, verify

#[test]
fn build_sign_verify_round_trip_with_a_two_of_three_root() {
    let t = setup();
    let bundle = t.signed_bundle("b.tar", 7, &[0, 2]);
    let r = verify(&bundle, &t.root, &[]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let out = r.out();
    assert!(out.starts_with("ok: revision 7, digest "), "{r:?}");
    assert!(out.contains("signed by [ops-1, ops-3]"), "{r:?}");

    // The digest printed is the SHA-256 of the manifest bytes.
    let manifest = portcullis(&["bundle", "inspect", s(&bundle), "--manifest"]);
    assert_eq!(manifest.code, Some(0), "{manifest:?}");
    assert!(out.contains(&sha256_hex(&manifest.stdout)), "{r:?}");
}

/// The test policy written as JSON.
const POLICY_JSON: &str = r#"{"revision": "bundle-json",
 "roles": {"reader": {}, "writer": {"inherits": ["reader"]}},
 "bindings": [{"role": "reader", "spiffe_id": "spiffe://example.org/ns/test/sa/reader"}],
 "rules": [{"id": "api-read", "effect": "allow", "roles": ["reader"], "route": "api",
            "methods": ["GET"], "path": "/api/**"}]}"#;

#[test]
fn build_takes_policy_json_when_the_directory_has_no_policy_yaml() {
    let t = setup();
    let src = t.path("json-src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("policy.json"), POLICY_JSON).unwrap();
    let out = t.path("j.tar");
    let r = build(&src, &out, 3);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(
        r.out()
            .contains("policy revision `bundle-json` with 1 rules"),
        "{r:?}"
    );
    sign(&out, &t.keys[0]);
    sign(&out, &t.keys[1]);
    let r = verify(&out, &t.root, &[]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let manifest = portcullis(&["bundle", "inspect", s(&out), "--manifest"]);
    assert!(
        manifest.out().contains(r#""entrypoint":"policy.json""#),
        "{manifest:?}"
    );

    // A JSON policy of the wrong shape is refused with its key path.
    std::fs::write(
        src.join("policy.json"),
        POLICY_JSON.replace(r#""roles": ["reader"]"#, r#""roles": "reader""#),
    )
    .unwrap();
    let bad = t.path("bad.tar");
    let r = build(&src, &bad, 4);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("policy.json"), "{r:?}");
    assert!(r.stderr.contains("rules[0].roles"), "{r:?}");
    assert!(!bad.exists());
}

#[test]
fn build_is_reproducible_with_a_fixed_creation_time() {
    let t = setup();
    let (a, b) = (t.path("a.tar"), t.path("b.tar"));
    assert_eq!(build(&t.src, &a, 3).code, Some(0));
    assert_eq!(build(&t.src, &b, 3).code, Some(0));
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn sign_with_the_same_key_id_twice_replaces_the_signature() {
    let t = setup();
    let bundle = t.signed_bundle("b.tar", 7, &[0]);
    let r = portcullis(&[
        "bundle",
        "sign",
        s(&bundle),
        "--key",
        s(&t.keys[0].path),
        "--key-id",
        "ops-1",
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.out().starts_with("replaced signature"), "{r:?}");
    // Still one signature: a repeated key does not reach the threshold of 2.
    assert_refused(&verify(&bundle, &t.root, &[]), "too_few_signatures");
}

#[test]
fn sign_out_writes_a_new_file_and_leaves_the_input_unsigned() {
    let t = setup();
    let bundle = t.signed_bundle("b.tar", 7, &[]);
    let before = std::fs::read(&bundle).unwrap();
    let signed = t.path("signed.tar");
    let r = portcullis(&[
        "bundle",
        "sign",
        s(&bundle),
        "--key",
        s(&t.keys[1].path),
        "--key-id",
        "ops-2",
        "--out",
        s(&signed),
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(std::fs::read(&bundle).unwrap(), before);
    sign(&signed, &t.keys[2]);
    assert_eq!(verify(&signed, &t.root, &[]).code, Some(0));
}

#[test]
fn inspect_prints_revision_digest_files_and_signers() {
    let t = setup();
    let bundle = t.signed_bundle("b.tar", 12, &[1]);
    let r = portcullis(&["bundle", "inspect", s(&bundle)]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let out = r.out();
    let policy_sha = sha256_hex(POLICY.as_bytes());
    for want in [
        "revision: 12\n".to_owned(),
        format!("created: {CREATED}\n"),
        "entrypoint: policy.yaml\n".to_owned(),
        format!("policy.yaml  {} bytes  sha256:{policy_sha}", POLICY.len()),
        "tests/readme.txt  21 bytes".to_owned(),
        "ops-2".to_owned(),
        "root update: none".to_owned(),
    ] {
        assert!(out.contains(&want), "missing `{want}`: {r:?}");
    }
    let manifest = portcullis(&["bundle", "inspect", s(&bundle), "--manifest"]);
    assert!(
        manifest
            .stdout
            .starts_with(br#"{"format":"portcullis-bundle-v1","revision":12,"#),
        "{manifest:?}"
    );
    assert!(
        out.contains(&format!("digest: {}\n", sha256_hex(&manifest.stdout))),
        "{r:?}"
    );
}

#[test]
fn inspect_signature_of_an_absent_key_id_is_an_error() {
    let t = setup();
    let bundle = t.signed_bundle("b.tar", 1, &[0]);
    let r = portcullis(&["bundle", "inspect", s(&bundle), "--signature", "ops-9"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("ops-9"), "{r:?}");
}

// ------------------------------------------------------------ refusals

#[test]
fn verify_refuses_a_tampered_file() {
    let t = setup();
    let bundle = t.signed_bundle("b.tar", 7, &[0, 1]);
    // One byte of the policy changed inside the tar (file data is stored
    // as is, so the archive stays well formed).
    patch_file(&bundle, b"/api/admin/**", b"/api/admix/**");
    let r = verify(&bundle, &t.root, &[]);
    assert_refused(&r, "tampered_file");
    assert!(r.out().contains("policy.yaml"), "{r:?}");
}

#[test]
fn verify_refuses_a_manifest_edited_after_signing() {
    let t = setup();
    let bundle = t.signed_bundle("b.tar", 7, &[0, 1]);
    patch_file(&bundle, br#""revision":7,"#, br#""revision":9,"#);
    let r = verify(&bundle, &t.root, &[]);
    assert_refused(&r, "bad_signature");
    assert!(
        r.out().contains("ops-1") && r.out().contains("ops-2"),
        "{r:?}"
    );
}

#[test]
fn verify_refuses_too_few_signatures() {
    let t = setup();
    let bundle = t.signed_bundle("b.tar", 7, &[1]);
    let r = verify(&bundle, &t.root, &[]);
    assert_refused(&r, "too_few_signatures");
}

#[test]
fn verify_refuses_a_signature_by_a_key_outside_the_root() {
    let t = setup();
    let bundle = t.signed_bundle("b.tar", 7, &[0]);
    let stranger = gen_key(t.dir.path(), "intruder", "ecdsa-p256");
    sign(&bundle, &stranger);
    let r = verify(&bundle, &t.root, &[]);
    assert_refused(&r, "unknown_key");
    assert!(
        r.out().contains("intruder"),
        "the unknown key is named: {r:?}"
    );
}

#[test]
fn verify_refuses_a_signature_filed_under_another_keys_id() {
    let t = setup();
    let bundle = t.path("b.tar");
    assert_eq!(build(&t.src, &bundle, 7).code, Some(0));
    sign(&bundle, &t.keys[0]);
    // ops-3's private key, filed as ops-2: does not verify under ops-2.
    let r = portcullis(&[
        "bundle",
        "sign",
        s(&bundle),
        "--key",
        s(&t.keys[2].path),
        "--key-id",
        "ops-2",
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_refused(&verify(&bundle, &t.root, &[]), "bad_signature");
}

#[test]
fn verify_counts_a_key_only_inside_its_validity_window() {
    let dir = tempfile::tempdir().unwrap();
    let a = gen_key(dir.path(), "ops-a", "ecdsa-p256");
    let b = gen_key(dir.path(), "ops-b", "ed25519");
    let window = ("2030-01-01T00:00:00Z", "2031-01-01T00:00:00Z");
    let root = write_root(
        dir.path(),
        "root.json",
        &root_json(1, 2, &[(&a, window), (&b, ALWAYS)]),
    );
    let src = source_dir(dir.path(), POLICY);
    let bundle = dir.path().join("b.tar");
    assert_eq!(build(&src, &bundle, 1).code, Some(0));
    sign(&bundle, &a);
    sign(&bundle, &b);

    let at = |t: &str| verify(&bundle, &root, &["--at", t]);
    assert_eq!(at("2030-06-01T00:00:00Z").code, Some(0));
    assert_eq!(
        at("2030-01-01T00:00:00Z").code,
        Some(0),
        "not_before is inclusive"
    );
    assert_eq!(at("2030-12-31T23:59:59Z").code, Some(0));

    let expired = at("2031-01-01T00:00:00Z");
    assert_refused(&expired, "expired_key");
    assert!(expired.out().contains("ops-a"), "{expired:?}");
    let not_yet = at("2029-12-31T23:59:59Z");
    assert_refused(&not_yet, "key_not_yet_valid");
    assert!(not_yet.out().contains("ops-a"), "{not_yet:?}");
}

#[test]
fn verify_refuses_a_truncated_bundle_at_every_cut() {
    let t = setup();
    let bundle = t.signed_bundle("b.tar", 7, &[0, 1]);
    let full = std::fs::read(&bundle).unwrap();
    let cut = t.path("cut.tar");
    for len in [
        0,
        1,
        100,
        511,
        512,
        700,
        1024,
        full.len() / 2,
        full.len() - 1024,
        full.len() - 1,
    ] {
        std::fs::write(&cut, &full[..len]).unwrap();
        let r = verify(&cut, &t.root, &[]);
        assert_eq!(r.code, Some(2), "cut at {len}: {r:?}");
        assert!(r.out().starts_with("refused ("), "cut at {len}: {r:?}");
    }
}

#[test]
fn verify_missing_bundle_or_trust_root_is_an_error_not_a_refusal() {
    let t = setup();
    let bundle = t.signed_bundle("b.tar", 7, &[0, 1]);
    let r = verify(&t.path("absent.tar"), &t.root, &[]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("absent.tar"), "{r:?}");
    let r = verify(&bundle, &t.path("absent.json"), &[]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("absent.json"), "{r:?}");
    std::fs::write(
        t.path("bad.json"),
        r#"{"format":"portcullis-trust-root-v1"}"#,
    )
    .unwrap();
    let r = verify(&bundle, &t.path("bad.json"), &[]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("bad.json"), "{r:?}");
}

#[test]
fn verify_and_sign_accept_a_bundle_directory_with_the_same_checks() {
    let t = setup();
    let bundle = t.signed_bundle("b.tar", 7, &[0]);
    let unpacked = t.path("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    sh(&unpacked, &format!("tar -xf {}", s(&bundle)));
    assert!(unpacked.join("signatures/ops-1.sig").is_file());

    // Signing a directory needs --out: the directory itself is not rewritten.
    let r = portcullis(&[
        "bundle",
        "sign",
        s(&unpacked),
        "--key",
        s(&t.keys[1].path),
        "--key-id",
        "ops-2",
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("--out"), "{r:?}");
    let signed = t.path("signed.tar");
    let r = portcullis(&[
        "bundle",
        "sign",
        s(&unpacked),
        "--key",
        s(&t.keys[1].path),
        "--key-id",
        "ops-2",
        "--out",
        s(&signed),
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(verify(&signed, &t.root, &[]).code, Some(0));

    // The directory itself (one signature) is short of the threshold; an
    // unlisted file in it is refused before signatures are counted.
    assert_refused(&verify(&unpacked, &t.root, &[]), "too_few_signatures");
    std::fs::write(unpacked.join("extra.yaml"), "x: 1\n").unwrap();
    let r = verify(&unpacked, &t.root, &[]);
    assert_refused(&r, "extra_file");
    assert!(r.out().contains("extra.yaml"), "{r:?}");
}

// ------------------------------------------------------------ rollback state

#[test]
fn verify_with_state_refuses_lower_revisions_and_other_digests() {
    let t = setup();
    let state = t.path("state.json");
    let state_arg = ["--state", s(&state), "--update-state"];

    let v5 = t.signed_bundle("v5.tar", 5, &[0, 1]);
    let r = verify(&v5, &t.root, &state_arg);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(state.exists());
    assert_eq!(mode(&state), 0o600);

    // Lower revision.
    let v4 = t.signed_bundle("v4.tar", 4, &[0, 1]);
    assert_refused(&verify(&v4, &t.root, &state_arg), "rollback");

    // The same bundle again: nothing to do, still success.
    let r = verify(&v5, &t.root, &state_arg);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.out().contains("already accepted"), "{r:?}");

    // Revision 5 with other content.
    std::fs::write(t.src.join("tests/readme.txt"), "changed\n").unwrap();
    let other5 = t.signed_bundle("other5.tar", 5, &[0, 1]);
    assert_refused(&verify(&other5, &t.root, &state_arg), "rollback");

    // A newer revision is accepted and raises the floor.
    let v6 = t.signed_bundle("v6.tar", 6, &[0, 1]);
    assert_eq!(verify(&v6, &t.root, &state_arg).code, Some(0));
    assert_refused(&verify(&v5, &t.root, &state_arg), "rollback");
}

#[test]
fn verify_without_update_state_does_not_record_anything() {
    let t = setup();
    let state = t.path("state.json");
    let v5 = t.signed_bundle("v5.tar", 5, &[0, 1]);
    let r = verify(&v5, &t.root, &["--state", s(&state)]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(!state.exists());
}

#[test]
fn verify_refused_bundle_does_not_update_the_state() {
    let t = setup();
    let state = t.path("state.json");
    let state_arg = ["--state", s(&state), "--update-state"];
    let v5 = t.signed_bundle("v5.tar", 5, &[0, 1]);
    assert_eq!(verify(&v5, &t.root, &state_arg).code, Some(0));
    let before = std::fs::read(&state).unwrap();
    let v9 = t.signed_bundle("v9.tar", 9, &[0]);
    assert_refused(&verify(&v9, &t.root, &state_arg), "too_few_signatures");
    assert_eq!(std::fs::read(&state).unwrap(), before);
}

#[test]
fn verify_refuses_a_trust_root_older_than_the_state_records() {
    let t = setup();
    let state = t.path("state.json");
    // A gateway that already runs under trust root version 5.
    let json = serde_json::json!({
        "highest_revision": 1,
        "digest": "0".repeat(64),
        "root_version": 5,
        "root_json": null,
    });
    std::fs::write(&state, json.to_string()).unwrap();
    let v5 = t.signed_bundle("v5.tar", 5, &[0, 1]);
    let r = verify(&v5, &t.root, &["--state", s(&state), "--update-state"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("older than version 5"), "{r:?}");
    assert!(r.stdout.is_empty(), "no verdict: {r:?}");
}

#[test]
fn verify_with_a_corrupt_state_file_is_an_error() {
    let t = setup();
    let state = t.path("state.json");
    std::fs::write(&state, "{ not json").unwrap();
    let v5 = t.signed_bundle("v5.tar", 5, &[0, 1]);
    let r = verify(&v5, &t.root, &["--state", s(&state), "--update-state"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("state.json"), "{r:?}");
    assert_eq!(std::fs::read_to_string(&state).unwrap(), "{ not json");
}

// ------------------------------------------------------------ build refusals

#[test]
fn build_refuses_an_invalid_policy() {
    let dir = tempfile::tempdir().unwrap();
    let bad = POLICY.replace("roles: [writer]", "roles: [editr]");
    let src = source_dir(dir.path(), &bad);
    let out = dir.path().join("b.tar");
    let r = build(&src, &out, 1);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("policy.yaml"), "{r:?}");
    assert!(
        r.stderr.contains("editr"),
        "the policy error is shown: {r:?}"
    );
    assert!(!out.exists());
}

#[test]
fn build_refuses_a_policy_that_is_not_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let src = source_dir(dir.path(), "rules: [ unclosed\n");
    let out = dir.path().join("b.tar");
    let r = build(&src, &out, 1);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("policy.yaml"), "{r:?}");
    assert!(!out.exists());
}

#[test]
fn build_refuses_a_missing_entrypoint_and_revision_zero() {
    let t = setup();
    let out = t.path("b.tar");
    let r = portcullis(&[
        "bundle",
        "build",
        s(&t.src),
        "--revision",
        "1",
        "--entrypoint",
        "absent.yaml",
        "--out",
        s(&out),
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("absent.yaml"), "{r:?}");
    let r = portcullis(&[
        "bundle",
        "build",
        s(&t.src),
        "--revision",
        "0",
        "--out",
        s(&out),
    ]);
    assert_eq!(r.code, Some(2), "clap usage error: {r:?}");
    assert!(!out.exists());
}

#[test]
fn build_refuses_an_output_inside_the_source_directory() {
    let t = setup();
    let out = t.src.join("b.tar");
    let r = build(&t.src, &out, 1);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("inside the bundle directory"), "{r:?}");
    assert!(!out.exists());
}

#[test]
fn sign_refuses_a_signature_file_that_is_not_base64() {
    let t = setup();
    let bundle = t.signed_bundle("b.tar", 1, &[]);
    let before = std::fs::read(&bundle).unwrap();
    let sig = t.path("sig.b64");
    std::fs::write(&sig, "this is not base64!\n").unwrap();
    let r = portcullis(&[
        "bundle",
        "sign",
        s(&bundle),
        "--key-id",
        "ops-1",
        "--signature",
        s(&sig),
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("sig.b64"), "{r:?}");
    assert_eq!(std::fs::read(&bundle).unwrap(), before, "bundle untouched");
}

#[test]
fn sign_refuses_a_file_that_is_not_a_bundle() {
    let t = setup();
    let not_bundle = t.path("notes.tar");
    std::fs::write(&not_bundle, vec![b'x'; 2048]).unwrap();
    let r = portcullis(&[
        "bundle",
        "sign",
        s(&not_bundle),
        "--key",
        s(&t.keys[0].path),
        "--key-id",
        "ops-1",
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("notes.tar"), "{r:?}");
}

// ------------------------------------------------------------ openssl interop

#[test]
fn openssl_signature_over_the_manifest_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sh(
        d,
        "openssl ecparam -name prime256v1 -genkey -noout -out k.pem",
    );
    sh(d, "openssl ec -in k.pem -pubout -out pub.pem");
    let ext = Key {
        id: "ops-ext".to_owned(),
        alg: "ecdsa-p256",
        path: d.join("k.pem"),
        public_pem: std::fs::read_to_string(d.join("pub.pem")).unwrap(),
    };
    let root = write_root(d, "root.json", &root_json(1, 1, &[(&ext, ALWAYS)]));
    let src = source_dir(d, POLICY);
    let bundle = d.join("b.tar");
    assert_eq!(build(&src, &bundle, 3).code, Some(0));

    // Unsigned: refused.
    assert_refused(&verify(&bundle, &root, &[]), "too_few_signatures");

    let manifest = portcullis(&["bundle", "inspect", s(&bundle), "--manifest"]);
    assert_eq!(manifest.code, Some(0), "{manifest:?}");
    std::fs::write(d.join("manifest.json"), &manifest.stdout).unwrap();
    sh(
        d,
        "openssl dgst -sha256 -sign k.pem manifest.json | base64 -w0 > sig",
    );
    let r = portcullis(&[
        "bundle",
        "sign",
        s(&bundle),
        "--key-id",
        "ops-ext",
        "--signature",
        s(&d.join("sig")),
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let r = verify(&bundle, &root, &[]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.out().contains("signed by [ops-ext]"), "{r:?}");
}

#[test]
fn openssl_signature_wrapped_by_base64_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sh(
        d,
        "openssl ecparam -name prime256v1 -genkey -noout -out k.pem",
    );
    sh(d, "openssl ec -in k.pem -pubout -out pub.pem");
    let ext = Key {
        id: "ops-ext".to_owned(),
        alg: "ecdsa-p256",
        path: d.join("k.pem"),
        public_pem: std::fs::read_to_string(d.join("pub.pem")).unwrap(),
    };
    let root = write_root(d, "root.json", &root_json(1, 1, &[(&ext, ALWAYS)]));
    let src = source_dir(d, POLICY);
    let bundle = d.join("b.tar");
    assert_eq!(build(&src, &bundle, 3).code, Some(0));
    let manifest = portcullis(&["bundle", "inspect", s(&bundle), "--manifest"]);
    std::fs::write(d.join("manifest.json"), &manifest.stdout).unwrap();
    // Plain `base64` wraps at 76 columns: a DER signature spans two lines.
    sh(
        d,
        "openssl dgst -sha256 -sign k.pem manifest.json | base64 > sig",
    );
    assert!(
        std::fs::read_to_string(d.join("sig"))
            .unwrap()
            .lines()
            .count()
            > 1
    );
    let r = portcullis(&[
        "bundle",
        "sign",
        s(&bundle),
        "--key-id",
        "ops-ext",
        "--signature",
        s(&d.join("sig")),
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(verify(&bundle, &root, &[]).code, Some(0));
}

#[test]
fn openssl_signature_over_other_bytes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sh(
        d,
        "openssl ecparam -name prime256v1 -genkey -noout -out k.pem",
    );
    sh(d, "openssl ec -in k.pem -pubout -out pub.pem");
    let ext = Key {
        id: "ops-ext".to_owned(),
        alg: "ecdsa-p256",
        path: d.join("k.pem"),
        public_pem: std::fs::read_to_string(d.join("pub.pem")).unwrap(),
    };
    let root = write_root(d, "root.json", &root_json(1, 1, &[(&ext, ALWAYS)]));
    let src = source_dir(d, POLICY);
    let bundle = d.join("b.tar");
    assert_eq!(build(&src, &bundle, 3).code, Some(0));
    // Signed the policy file instead of the manifest.
    sh(
        d,
        "openssl dgst -sha256 -sign k.pem src/policy.yaml | base64 -w0 > sig",
    );
    let r = portcullis(&[
        "bundle",
        "sign",
        s(&bundle),
        "--key-id",
        "ops-ext",
        "--signature",
        s(&d.join("sig")),
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_refused(&verify(&bundle, &root, &[]), "bad_signature");
}

#[test]
fn cli_ecdsa_signature_verifies_with_openssl() {
    let t = setup();
    let d = t.dir.path();
    let bundle = t.signed_bundle("b.tar", 4, &[0]);
    std::fs::write(d.join("pub.pem"), &t.keys[0].public_pem).unwrap();
    let manifest = portcullis(&["bundle", "inspect", s(&bundle), "--manifest"]);
    std::fs::write(d.join("manifest.json"), &manifest.stdout).unwrap();
    let sig = portcullis(&["bundle", "inspect", s(&bundle), "--signature", "ops-1"]);
    assert_eq!(sig.code, Some(0), "{sig:?}");
    let der = base64::engine::general_purpose::STANDARD
        .decode(sig.out().trim_end())
        .unwrap();
    assert_eq!(der.first(), Some(&0x30), "a DER SEQUENCE");
    std::fs::write(d.join("sig.der"), &der).unwrap();
    let ok = sh(
        d,
        "openssl dgst -sha256 -verify pub.pem -signature sig.der manifest.json",
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("Verified OK"));
    // The same check fails on other bytes, so the line above can fail.
    std::fs::write(d.join("other.json"), b"{}").unwrap();
    let bad = Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "sig.der",
            "other.json",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

#[test]
fn cli_ed25519_signature_verifies_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = gen_key(d, "ops-ed", "ed25519");
    std::fs::write(d.join("pub.pem"), &key.public_pem).unwrap();
    let src = source_dir(d, POLICY);
    let bundle = d.join("b.tar");
    assert_eq!(build(&src, &bundle, 2).code, Some(0));
    sign(&bundle, &key);
    let manifest = portcullis(&["bundle", "inspect", s(&bundle), "--manifest"]);
    std::fs::write(d.join("manifest.json"), &manifest.stdout).unwrap();
    let sig = portcullis(&["bundle", "inspect", s(&bundle), "--signature", "ops-ed"]);
    let raw = base64::engine::general_purpose::STANDARD
        .decode(sig.out().trim_end())
        .unwrap();
    assert_eq!(raw.len(), 64);
    std::fs::write(d.join("sig.bin"), &raw).unwrap();
    sh(
        d,
        "openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in manifest.json -sigfile sig.bin",
    );
}

#[test]
fn openssl_sec1_p256_key_signs_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // `BEGIN EC PRIVATE KEY` (SEC 1), as `openssl ecparam -genkey` writes it.
    sh(
        d,
        "openssl ecparam -name prime256v1 -genkey -noout -out k.pem && chmod 600 k.pem",
    );
    sh(d, "openssl ec -in k.pem -pubout -out pub.pem");
    assert!(std::fs::read_to_string(d.join("k.pem"))
        .unwrap()
        .starts_with("-----BEGIN EC PRIVATE KEY-----"));
    let ext = Key {
        id: "ops-ec".to_owned(),
        alg: "ecdsa-p256",
        path: d.join("k.pem"),
        public_pem: std::fs::read_to_string(d.join("pub.pem")).unwrap(),
    };
    let root = write_root(d, "root.json", &root_json(1, 1, &[(&ext, ALWAYS)]));
    let src = source_dir(d, POLICY);
    let bundle = d.join("b.tar");
    assert_eq!(build(&src, &bundle, 3).code, Some(0));
    sign(&bundle, &ext);
    let r = verify(&bundle, &root, &[]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.out().contains("signed by [ops-ec]"), "{r:?}");
}

#[test]
fn openssl_generated_ed25519_key_signs_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sh(
        d,
        "openssl genpkey -algorithm ed25519 -out k.pem && chmod 600 k.pem",
    );
    sh(d, "openssl pkey -in k.pem -pubout -out pub.pem");
    let ext = Key {
        id: "ops-ed".to_owned(),
        alg: "ed25519",
        path: d.join("k.pem"),
        public_pem: std::fs::read_to_string(d.join("pub.pem")).unwrap(),
    };
    let root = write_root(d, "root.json", &root_json(1, 1, &[(&ext, ALWAYS)]));
    let src = source_dir(d, POLICY);
    let bundle = d.join("b.tar");
    assert_eq!(build(&src, &bundle, 3).code, Some(0));
    sign(&bundle, &ext);
    let r = verify(&bundle, &root, &[]);
    assert_eq!(r.code, Some(0), "{r:?}");
}

// ------------------------------------------------------------ trust-root rotation

/// The current root (version 1, keys ops-1..3, threshold 2) and a new root
/// (version 2, keys new-1 and new-2, threshold 2) with its file.
fn new_root(t: &Setup) -> (Vec<Key>, PathBuf) {
    let new: Vec<Key> = ["new-1", "new-2"]
        .iter()
        .map(|id| gen_key(t.dir.path(), id, "ed25519"))
        .collect();
    let json = root_json(2, 2, &[(&new[0], ALWAYS), (&new[1], ALWAYS)]);
    (new, write_root(t.dir.path(), "root-v2.json", &json))
}

fn root_sign(root: &Path, key: &Key, out: &Path) {
    let r = portcullis(&[
        "bundle",
        "root-sign",
        s(root),
        "--key",
        s(&key.path),
        "--key-id",
        &key.id,
        "--out",
        s(out),
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
}

/// Builds revision `rev` carrying `root` with the given root signatures,
/// signed by `signers`.
fn build_with_root(
    t: &Setup,
    name: &str,
    rev: u64,
    root: &Path,
    root_sigs: &[(&str, &Path)],
    signers: &[&Key],
) -> PathBuf {
    let out = t.path(name);
    let rev = rev.to_string();
    let pairs: Vec<String> = root_sigs
        .iter()
        .map(|(id, p)| format!("{id}={}", s(p)))
        .collect();
    let mut args = vec![
        "bundle",
        "build",
        s(&t.src),
        "--revision",
        &rev,
        "--out",
        s(&out),
        "--root-update",
        s(root),
    ];
    for p in &pairs {
        args.extend(["--root-signature", p.as_str()]);
    }
    let r = portcullis(&args);
    assert_eq!(r.code, Some(0), "{r:?}");
    for k in signers {
        sign(&out, k);
    }
    out
}

#[test]
fn root_update_signed_by_the_current_threshold_is_accepted_and_remembered() {
    let t = setup();
    let (new, root2) = new_root(&t);
    let (s1, s3) = (t.path("s1.sig"), t.path("s3.sig"));
    root_sign(&root2, &t.keys[0], &s1);
    root_sign(&root2, &t.keys[2], &s3);
    let bundle = build_with_root(
        &t,
        "b10.tar",
        10,
        &root2,
        &[("ops-1", &s1), ("ops-3", &s3)],
        &[&new[0], &new[1]],
    );
    let inspect = portcullis(&["bundle", "inspect", s(&bundle)]);
    assert!(
        inspect.out().contains(
            "root update: version 2, threshold 2, keys [new-1, new-2], signed by [ops-1, ops-3]"
        ),
        "{inspect:?}"
    );

    let state = t.path("state.json");
    let r = verify(&bundle, &t.root, &["--state", s(&state), "--update-state"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.out().contains("signed by [new-1, new-2]"), "{r:?}");
    assert!(
        r.out().contains("trust root updated: version 1 -> 2"),
        "{r:?}"
    );

    // The next bundle is signed by the new keys only and carries no update:
    // the state remembers root version 2 ...
    let next = t.signed_bundle("b11.tar", 11, &[]);
    sign(&next, &new[0]);
    sign(&next, &new[1]);
    let r = verify(&next, &t.root, &["--state", s(&state), "--update-state"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    // ... while without the state the old root does not know these keys.
    assert_refused(&verify(&next, &t.root, &[]), "unknown_key");
    // And the old keys no longer count once the state holds root 2.
    let old = t.signed_bundle("b12.tar", 12, &[0, 1]);
    assert_refused(
        &verify(&old, &t.root, &["--state", s(&state)]),
        "unknown_key",
    );
}

#[test]
fn root_update_with_too_few_current_signatures_is_refused() {
    let t = setup();
    let (new, root2) = new_root(&t);
    let s1 = t.path("s1.sig");
    root_sign(&root2, &t.keys[0], &s1);
    let bundle = build_with_root(
        &t,
        "b.tar",
        10,
        &root2,
        &[("ops-1", &s1)],
        &[&new[0], &new[1]],
    );
    assert_refused(&verify(&bundle, &t.root, &[]), "root_update_refused");
}

#[test]
fn root_update_signed_only_by_the_new_roots_keys_is_refused() {
    let t = setup();
    let (new, root2) = new_root(&t);
    let (n1, n2) = (t.path("n1.sig"), t.path("n2.sig"));
    root_sign(&root2, &new[0], &n1);
    root_sign(&root2, &new[1], &n2);
    let bundle = build_with_root(
        &t,
        "b.tar",
        10,
        &root2,
        &[("new-1", &n1), ("new-2", &n2)],
        &[&new[0], &new[1]],
    );
    assert_refused(&verify(&bundle, &t.root, &[]), "root_update_refused");
}

#[test]
fn root_update_refused_with_a_valid_bundle_signature_too() {
    // Even a bundle the CURRENT root would accept is refused when the root
    // update it carries is not properly signed.
    let t = setup();
    let (_new, root2) = new_root(&t);
    let s1 = t.path("s1.sig");
    root_sign(&root2, &t.keys[0], &s1);
    let bundle = build_with_root(
        &t,
        "b.tar",
        10,
        &root2,
        &[("ops-1", &s1)],
        &[&t.keys[0], &t.keys[1]],
    );
    assert_refused(&verify(&bundle, &t.root, &[]), "root_update_refused");
}

#[test]
fn root_sign_refuses_an_invalid_root_file() {
    let t = setup();
    let bad = t.path("bad-root.json");
    std::fs::write(
        &bad,
        r#"{"format":"portcullis-trust-root-v1","version":2,"threshold":3,"keys":[]}"#,
    )
    .unwrap();
    let out = t.path("s.sig");
    let r = portcullis(&[
        "bundle",
        "root-sign",
        s(&bad),
        "--key",
        s(&t.keys[0].path),
        "--key-id",
        "ops-1",
        "--out",
        s(&out),
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("bad-root.json"), "{r:?}");
    assert!(!out.exists());
}
