use super::*;
use crate::test_util::{bundle, files, key, ts};

fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut sorted: Vec<_> = entries.to_vec();
    sorted.sort();
    archive::write_tar(sorted).unwrap()
}

fn load(entries: &[(&str, &[u8])]) -> Result<Bundle, BundleError> {
    Bundle::from_tar(&tar_of(entries), &Limits::default())
}

#[test]
fn from_files_lists_every_file_with_size_and_digest() {
    let b = bundle(3);
    let m = b.manifest();
    assert_eq!(m.revision, 3);
    assert_eq!(b.revision(), 3);
    assert_eq!(m.created, "2025-05-01T00:00:00Z");
    assert_eq!(m.entrypoint, "policy.yaml");
    assert_eq!(m.files.len(), 2);
    assert_eq!(m.files[0].size, 22);
    assert_eq!(
        m.files[0].sha256,
        manifest::sha256_hex(b"revision: 1\nrules: []\n")
    );
    assert_eq!(b.entrypoint(), b"revision: 1\nrules: []\n");
    assert_eq!(b.file("tests/a.yaml"), Some(&b"cases: []\n"[..]));
    assert_eq!(b.digest(), manifest::sha256_hex(b.manifest_bytes()));
    assert_eq!(b.files().count(), 2);
}

#[test]
fn build_refuses_bad_arguments() {
    let created = ts("2025-05-01T00:00:00Z");
    assert_eq!(
        Bundle::from_files(files(), 0, "policy.yaml", created)
            .unwrap_err()
            .reason(),
        "malformed_manifest"
    );
    assert_eq!(
        Bundle::from_files(files(), 1, "nope.yaml", created)
            .unwrap_err()
            .reason(),
        "malformed_manifest"
    );
}

#[test]
fn tar_round_trip_keeps_everything() {
    let k = key();
    let mut b = bundle(5);
    b.sign("ops-1", &k).unwrap();
    b.set_root_update(b"{}".to_vec(), vec![("ops-1".to_owned(), vec![1, 2, 3])]);
    let bytes = b.to_tar().unwrap();
    let again = Bundle::from_tar(&bytes, &Limits::default()).unwrap();
    assert_eq!(again.manifest(), b.manifest());
    assert_eq!(again.manifest_bytes(), b.manifest_bytes());
    assert_eq!(
        again.signatures().collect::<Vec<_>>(),
        b.signatures().collect::<Vec<_>>()
    );
    let (json, sigs) = again.root_update().unwrap();
    assert_eq!(json, b"{}");
    assert_eq!(sigs, &[("ops-1".to_owned(), vec![1, 2, 3])]);
    assert_eq!(again.to_tar().unwrap(), bytes, "deterministic");
}

#[test]
fn missing_manifest_is_refused() {
    let err = load(&[("policy.yaml", b"p")]).unwrap_err();
    assert_eq!(err.reason(), "missing_file");
    assert!(err.to_string().contains("manifest.json"));
}

#[test]
fn unexpected_files_in_reserved_places_are_refused() {
    let b = bundle(1);
    let m = b.manifest_bytes();
    let p = files()["policy.yaml"].clone();
    let t = files()["tests/a.yaml"].clone();
    for extra in [
        "signatures/README",
        "signatures/UPPER.sig",
        "signatures/a/b.sig",
        "root/other.json",
        "root/signatures/x.txt",
    ] {
        let err = load(&[
            ("manifest.json", m),
            ("policy.yaml", &p),
            ("tests/a.yaml", &t),
            (extra, b"AAAA"),
        ])
        .unwrap_err();
        assert_eq!(err.reason(), "extra_file", "{extra}");
    }
}

#[test]
fn root_signatures_without_root_json_are_refused() {
    let b = bundle(1);
    let p = files()["policy.yaml"].clone();
    let t = files()["tests/a.yaml"].clone();
    let err = load(&[
        ("manifest.json", b.manifest_bytes()),
        ("policy.yaml", &p),
        ("tests/a.yaml", &t),
        ("root/signatures/ops-1.sig", b"AAAA"),
    ])
    .unwrap_err();
    assert_eq!(err.reason(), "missing_file");
}

#[test]
fn malformed_signature_files_are_refused() {
    let b = bundle(1);
    let p = files()["policy.yaml"].clone();
    let t = files()["tests/a.yaml"].clone();
    for sig in [&b"not base64!"[..], b"", b"AAAA AAAA"] {
        let err = load(&[
            ("manifest.json", b.manifest_bytes()),
            ("policy.yaml", &p),
            ("tests/a.yaml", &t),
            ("signatures/ops-1.sig", sig),
        ])
        .unwrap_err();
        assert_eq!(err.reason(), "malformed_signature", "{sig:?}");
    }
}

#[test]
fn add_signature_checks_id_and_length_and_replaces() {
    let mut b = bundle(1);
    assert_eq!(
        b.add_signature("Ops", vec![1]).unwrap_err().reason(),
        "invalid_key_id"
    );
    assert_eq!(
        b.add_signature("../x", vec![1]).unwrap_err().reason(),
        "invalid_key_id"
    );
    assert_eq!(
        b.add_signature(&"a".repeat(65), vec![1])
            .unwrap_err()
            .reason(),
        "invalid_key_id"
    );
    assert_eq!(
        b.add_signature("ops", vec![]).unwrap_err().reason(),
        "malformed_signature"
    );
    assert_eq!(
        b.add_signature("ops", vec![0; crate::MAX_SIGNATURE_BYTES + 1])
            .unwrap_err()
            .reason(),
        "malformed_signature"
    );
    b.add_signature("ops", vec![1]).unwrap();
    b.add_signature("ops", vec![2]).unwrap();
    assert_eq!(b.signatures().collect::<Vec<_>>(), [("ops", &[2u8][..])]);
    b.add_signature_base64("ops", "AwM=\n").unwrap();
    assert_eq!(b.signatures().collect::<Vec<_>>(), [("ops", &[3u8, 3][..])]);
    assert_eq!(
        b.add_signature_base64("ops", "AwM").unwrap_err().reason(),
        "malformed_signature"
    );
}

#[test]
fn to_tar_refuses_invalid_root_update_signature_ids() {
    let mut b = bundle(1);
    b.set_root_update(b"{}".to_vec(), vec![("../x".to_owned(), vec![1])]);
    assert_eq!(b.to_tar().unwrap_err().reason(), "invalid_key_id");
}

#[test]
fn oversized_root_update_is_refused() {
    let mut b = bundle(1);
    b.set_root_update(vec![b' '; MAX_ROOT_BYTES + 1], vec![]);
    let bytes = b.to_tar().unwrap();
    assert_eq!(
        Bundle::from_tar(&bytes, &Limits::default())
            .unwrap_err()
            .reason(),
        "entry_too_large"
    );
}

#[test]
fn debug_lists_names_not_contents() {
    let debug = format!("{:?}", bundle(1));
    assert!(debug.contains("policy.yaml"));
    assert!(!debug.contains("rules"));
}
