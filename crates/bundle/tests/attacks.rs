//! Every attack on a bundle, one test each: the bundle is refused with its
//! precise reason and never accepted.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions"
)]

mod common;

use common::*;
use portcullis_bundle::{Bundle, BundleError, Limits, Rejection, TrustRoot};

/// A bundle signed by `ops-1`, its archive, and the root that trusts it.
fn signed_archive() -> (Vec<u8>, portcullis_bundle::TrustRoot) {
    let k = key();
    let b = signed(7, &[("ops-1", &k)]);
    (b.to_tar().unwrap(), root(1, 1, &[("ops-1", &k)]))
}

fn refused(bytes: &[u8]) -> BundleError {
    load(bytes).expect_err("the bundle must be refused")
}

#[test]
fn the_untouched_bundle_verifies() {
    let (bytes, r) = signed_archive();
    let v = r.verify(&load(&bytes).unwrap(), now()).unwrap();
    assert_eq!(v.signers, ["ops-1"]);
}

#[test]
fn tampered_file_same_size_is_refused() {
    let (bytes, _) = signed_archive();
    let mut entries = unpack(&bytes);
    entries.insert(
        "policy.yaml".into(),
        b"revision: 1\nrules: [1]\n"[..22].to_vec(),
    );
    let err = refused(&pack_map(&entries));
    assert_eq!(err.reason(), "tampered_file");
    assert!(err.to_string().contains("`policy.yaml`"), "{err}");
}

#[test]
fn tampered_file_other_size_is_refused() {
    let (bytes, _) = signed_archive();
    let mut entries = unpack(&bytes);
    entries.insert("tests/allow.yaml".into(), b"cases: [evil]\n".to_vec());
    assert_eq!(refused(&pack_map(&entries)).reason(), "tampered_file");
}

#[test]
fn missing_file_is_refused() {
    let (bytes, _) = signed_archive();
    let mut entries = unpack(&bytes);
    entries.remove("tests/allow.yaml");
    let err = refused(&pack_map(&entries));
    assert_eq!(err.reason(), "missing_file");
    assert!(err.to_string().contains("`tests/allow.yaml`"));
}

#[test]
fn extra_file_is_refused() {
    let (bytes, _) = signed_archive();
    let mut entries = unpack(&bytes);
    entries.insert("tests/injected.yaml".into(), b"cases: []\n".to_vec());
    let err = refused(&pack_map(&entries));
    assert_eq!(err.reason(), "extra_file");
    assert!(err.to_string().contains("`tests/injected.yaml`"));
}

#[test]
fn manifest_edited_after_signing_is_refused() {
    let (bytes, r) = signed_archive();
    let mut entries = unpack(&bytes);
    let manifest = String::from_utf8(entries["manifest.json"].clone()).unwrap();
    entries.insert(
        "manifest.json".into(),
        manifest
            .replace("\"revision\":7", "\"revision\":8")
            .into_bytes(),
    );
    // Still a consistent bundle, so it loads; the signature no longer fits.
    let b = load(&pack_map(&entries)).unwrap();
    let err = r.verify(&b, now()).unwrap_err();
    assert_eq!(err.reason(), "bad_signature");
    assert!(err.to_string().contains("bad signature: `ops-1`"), "{err}");
}

#[test]
fn replaced_policy_with_rewritten_manifest_is_refused() {
    let (bytes, r) = signed_archive();
    let signature = load(&bytes)
        .unwrap()
        .signatures()
        .next()
        .unwrap()
        .1
        .to_vec();
    let dir = tempfile::tempdir().unwrap();
    write_source(dir.path());
    std::fs::write(dir.path().join("policy.yaml"), "rules: [allow-all]\n").unwrap();
    let mut evil = Bundle::build(dir.path(), 7, "policy.yaml", now()).unwrap();
    evil.add_signature("ops-1", signature).unwrap();
    assert_eq!(
        r.verify(&evil, now()).unwrap_err().reason(),
        "bad_signature"
    );
}

#[test]
fn bad_signature_is_refused() {
    let k = key();
    let impostor = key();
    let b = signed(7, &[("ops-1", &impostor)]);
    let err = root(1, 1, &[("ops-1", &k)]).verify(&b, now()).unwrap_err();
    assert_eq!(err.reason(), "bad_signature");
    let BundleError::Signatures(report) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        report.rejected(),
        [("ops-1".to_owned(), Rejection::BadSignature)]
    );
}

#[test]
fn garbage_signature_bytes_are_refused() {
    let k = key();
    let mut b = bundle(7);
    b.add_signature("ops-1", vec![0x30, 0x06, 2, 1, 1, 2, 1, 1])
        .unwrap();
    let err = root(1, 1, &[("ops-1", &k)]).verify(&b, now()).unwrap_err();
    assert_eq!(err.reason(), "bad_signature");
}

#[test]
fn unsigned_bundle_is_refused() {
    let err = root(1, 1, &[("ops-1", &key())])
        .verify(&bundle(7), now())
        .unwrap_err();
    assert_eq!(err.reason(), "too_few_signatures");
    assert!(err.to_string().contains("0 valid of 1 required"), "{err}");
}

#[test]
fn unknown_key_id_is_refused() {
    let k = key();
    let b = signed(7, &[("stranger", &key())]);
    let err = root(1, 1, &[("ops-1", &k)]).verify(&b, now()).unwrap_err();
    assert_eq!(err.reason(), "unknown_key");
    assert!(err.to_string().contains("unknown key: `stranger`"), "{err}");
}

#[test]
fn too_few_signatures_is_refused() {
    let (a, b, c) = (key(), key(), key());
    let r = root(1, 2, &[("a", &a), ("b", &b), ("c", &c)]);
    let one = signed(7, &[("a", &a)]);
    let err = r.verify(&one, now()).unwrap_err();
    assert_eq!(err.reason(), "too_few_signatures");
    assert!(
        err.to_string()
            .contains("1 valid of 2 required; valid: `a`"),
        "{err}"
    );
    // The same bundle with a second valid signature passes.
    let two = signed(7, &[("a", &a), ("c", &c)]);
    assert_eq!(r.verify(&two, now()).unwrap().signers, ["a", "c"]);
}

#[test]
fn too_few_signatures_names_the_keys_that_did_not_count() {
    let (a, b, c) = (key(), key(), key());
    let r = TrustRoot::create(
        1,
        3,
        &[
            spec("a", &a, "2024-01-01T00:00:00Z", "2030-01-01T00:00:00Z"),
            spec("b", &b, "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"),
            spec("c", &c, "2024-01-01T00:00:00Z", "2030-01-01T00:00:00Z"),
        ],
    )
    .unwrap();
    let mut bun = signed(7, &[("a", &a), ("b", &b), ("z", &key())]);
    bun.sign("c", &a).unwrap();
    let msg = r.verify(&bun, now()).unwrap_err().to_string();
    assert!(msg.contains("1 valid of 3 required"), "{msg}");
    assert!(msg.contains("bad signature: `c`"), "{msg}");
    assert!(
        msg.contains("expired: `b` (not after 2025-01-01T00:00:00Z)"),
        "{msg}"
    );
    assert!(msg.contains("unknown key: `z`"), "{msg}");
}

#[test]
fn expired_key_does_not_count() {
    let (old, new) = (key(), key());
    let r = TrustRoot::create(
        1,
        1,
        &[
            spec("old", &old, "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"),
            spec("new", &new, "2024-06-01T00:00:00Z", "2026-01-01T00:00:00Z"),
        ],
    )
    .unwrap();
    let by_old = signed(7, &[("old", &old)]);
    // now == not_after: already expired.
    let err = r.verify(&by_old, ts("2025-01-01T00:00:00Z")).unwrap_err();
    assert_eq!(err.reason(), "expired_key");
    assert!(r.verify(&by_old, ts("2024-12-31T23:59:59Z")).is_ok());
    // With another valid signature the bundle passes, without the old key.
    let both = signed(7, &[("old", &old), ("new", &new)]);
    let v = r.verify(&both, ts("2025-06-01T00:00:00Z")).unwrap();
    assert_eq!(v.signers, ["new"]);
}

#[test]
fn not_yet_valid_key_does_not_count() {
    let k = key();
    let r = TrustRoot::create(
        1,
        1,
        &[spec(
            "next",
            &k,
            "2026-01-01T00:00:00Z",
            "2027-01-01T00:00:00Z",
        )],
    )
    .unwrap();
    let b = signed(7, &[("next", &k)]);
    assert_eq!(
        r.verify(&b, now()).unwrap_err().reason(),
        "key_not_yet_valid"
    );
    assert!(r.verify(&b, ts("2026-01-01T00:00:00Z")).is_ok());
}

#[test]
fn truncated_archive_is_refused_at_every_cut() {
    let (bytes, _) = signed_archive();
    let mut cuts = 0;
    for cut in 0..bytes.len() {
        let err = refused(&bytes[..cut]);
        assert_eq!(err.reason(), "truncated", "cut at {cut}: {err}");
        cuts += 1;
    }
    assert!(cuts > 4000);
}

#[test]
fn oversize_bundle_is_refused() {
    let (bytes, _) = signed_archive();
    let limits = Limits {
        max_bundle_bytes: bytes.len() - 512,
        ..Limits::default()
    };
    let err = Bundle::from_tar(&bytes, &limits).unwrap_err();
    assert_eq!(err.reason(), "too_large");
    assert!(Bundle::from_tar(
        &bytes,
        &Limits {
            max_bundle_bytes: bytes.len(),
            ..limits
        }
    )
    .is_ok());
}

#[test]
fn oversize_entry_is_refused() {
    let (bytes, _) = signed_archive();
    let limits = Limits {
        max_file_bytes: 10,
        ..Limits::default()
    };
    assert_eq!(
        Bundle::from_tar(&bytes, &limits).unwrap_err().reason(),
        "entry_too_large"
    );
}

#[test]
fn too_many_entries_is_refused() {
    let (bytes, _) = signed_archive();
    let limits = Limits {
        max_entries: 3,
        ..Limits::default()
    };
    assert_eq!(
        Bundle::from_tar(&bytes, &limits).unwrap_err().reason(),
        "too_many_entries"
    );
}

#[test]
fn parent_dir_entry_is_refused() {
    let (bytes, _) = signed_archive();
    let evil = append_raw(
        &bytes,
        raw_header(b"../x", tar::EntryType::Regular, 1),
        b"x",
    );
    let err = refused(&evil);
    assert_eq!(err.reason(), "unsafe_path");
    assert!(err.to_string().contains("`..` component"), "{err}");
}

#[test]
fn nested_parent_dir_entry_is_refused() {
    let (bytes, _) = signed_archive();
    let evil = append_raw(
        &bytes,
        raw_header(b"tests/../../etc/cron.d/x", tar::EntryType::Regular, 1),
        b"x",
    );
    assert_eq!(refused(&evil).reason(), "unsafe_path");
}

#[test]
fn absolute_path_entry_is_refused() {
    let (bytes, _) = signed_archive();
    let evil = append_raw(
        &bytes,
        raw_header(b"/etc/passwd", tar::EntryType::Regular, 1),
        b"x",
    );
    let err = refused(&evil);
    assert_eq!(err.reason(), "unsafe_path");
    assert!(err.to_string().contains("absolute path"), "{err}");
}

#[test]
fn backslash_path_entry_is_refused() {
    let (bytes, _) = signed_archive();
    let evil = append_raw(
        &bytes,
        raw_header(b"..\\x", tar::EntryType::Regular, 1),
        b"x",
    );
    assert_eq!(refused(&evil).reason(), "unsafe_path");
}

#[test]
fn symlink_entry_is_refused() {
    let (bytes, _) = signed_archive();
    let mut header = raw_header(b"tests/link.yaml", tar::EntryType::Symlink, 0);
    header.set_link_name("/etc/passwd").unwrap();
    let err = refused(&append_raw(&bytes, header, b""));
    assert_eq!(err.reason(), "unsupported_entry");
    assert!(err.to_string().contains("symbolic link"), "{err}");
}

#[test]
fn hardlink_entry_is_refused() {
    let (bytes, _) = signed_archive();
    let mut header = raw_header(b"tests/link.yaml", tar::EntryType::Link, 0);
    header.set_link_name("policy.yaml").unwrap();
    let err = refused(&append_raw(&bytes, header, b""));
    assert_eq!(err.reason(), "unsupported_entry");
    assert!(err.to_string().contains("hard link"), "{err}");
}

#[test]
fn device_entry_is_refused() {
    let (bytes, _) = signed_archive();
    let header = raw_header(b"tests/dev", tar::EntryType::Char, 0);
    assert_eq!(
        refused(&append_raw(&bytes, header, b"")).reason(),
        "unsupported_entry"
    );
}

#[test]
fn pax_header_is_refused() {
    let (bytes, _) = signed_archive();
    let header = raw_header(b"PaxHeader", tar::EntryType::XHeader, 20);
    let evil = append_raw(&bytes, header, b"20 path=../../evil\n");
    assert_eq!(refused(&evil).reason(), "unsupported_entry");
}

#[test]
fn duplicate_manifest_member_is_refused() {
    let (bytes, _) = signed_archive();
    let mut entries = unpack(&bytes);
    let manifest = String::from_utf8(entries["manifest.json"].clone()).unwrap();
    let dup = manifest.replacen(
        "\"entrypoint\":\"policy.yaml\"",
        "\"entrypoint\":\"policy.yaml\",\"entrypoint\":\"tests/allow.yaml\"",
        1,
    );
    assert_ne!(dup, manifest);
    entries.insert("manifest.json".into(), dup.into_bytes());
    let err = refused(&pack_map(&entries));
    assert_eq!(err.reason(), "duplicate_member");
}

#[test]
fn duplicate_manifest_entry_is_refused() {
    let (bytes, _) = signed_archive();
    let entries = unpack(&bytes);
    let other = bundle(99);
    let mut list: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_slice()))
        .collect();
    list.push(("manifest.json", other.manifest_bytes()));
    assert_eq!(refused(&pack(list)).reason(), "duplicate_entry");
}

#[test]
fn unknown_manifest_field_is_refused() {
    let (bytes, _) = signed_archive();
    let mut entries = unpack(&bytes);
    let manifest = String::from_utf8(entries["manifest.json"].clone()).unwrap();
    entries.insert(
        "manifest.json".into(),
        manifest
            .replacen('{', "{\"include\":\"/etc\",", 1)
            .into_bytes(),
    );
    assert_eq!(refused(&pack_map(&entries)).reason(), "malformed_manifest");
}

#[test]
fn compressed_archive_is_refused() {
    // A gzip stream is not a ustar archive.
    let mut gz = vec![0x1f, 0x8b, 8, 0];
    gz.resize(1024, 0);
    let err = refused(&gz);
    assert_eq!(err.reason(), "malformed_archive");
}

#[test]
fn empty_input_is_refused() {
    assert_eq!(refused(&[]).reason(), "truncated");
    assert_eq!(refused(&[0; 1024]).reason(), "missing_file");
}
