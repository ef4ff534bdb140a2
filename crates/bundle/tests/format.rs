//! The bundle format: building, writing and reading back.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions"
)]

mod common;

use common::*;
use portcullis_bundle::{Bundle, Limits, MANIFEST_FORMAT};

#[test]
fn build_tar_from_tar_round_trip_is_byte_identical() {
    let k = key();
    let mut b = bundle(12);
    b.sign("ops-1", &k).unwrap();
    let first = b.to_tar().unwrap();
    let again = load(&first).unwrap();
    assert_eq!(again.manifest(), b.manifest());
    assert_eq!(again.manifest_bytes(), b.manifest_bytes());
    assert_eq!(again.digest(), b.digest());
    assert_eq!(again.entrypoint(), b"revision: 1\nrules: []\n");
    assert_eq!(again.to_tar().unwrap(), first);
    // An independent build of the same source gives the same bytes.
    let mut other = bundle(12);
    other
        .add_signature("ops-1", b.signatures().next().unwrap().1.to_vec())
        .unwrap();
    assert_eq!(other.to_tar().unwrap(), first);
}

#[test]
fn archive_layout_is_sorted_with_fixed_metadata() {
    let mut b = bundle(1);
    b.sign("ops-1", &key()).unwrap();
    let bytes = b.to_tar().unwrap();
    let mut archive = tar::Archive::new(&bytes[..]);
    let mut paths = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let h = entry.header();
        assert!(h.as_ustar().is_some());
        assert_eq!(h.mode().unwrap(), 0o644);
        assert_eq!(
            (h.uid().unwrap(), h.gid().unwrap(), h.mtime().unwrap()),
            (0, 0, 0)
        );
        assert_eq!(h.username().unwrap(), Some(""));
        assert_eq!(h.entry_type(), tar::EntryType::Regular);
        paths.push(entry.path().unwrap().to_string_lossy().into_owned());
    }
    assert_eq!(
        paths,
        [
            "manifest.json",
            "policy.yaml",
            "signatures/ops-1.sig",
            "tests/allow.yaml"
        ]
    );
    assert!(bytes.ends_with(&[0; 1024]));
}

#[test]
fn manifest_has_the_documented_shape() {
    let b = bundle(3);
    let text = std::str::from_utf8(b.manifest_bytes()).unwrap();
    assert!(text.starts_with(&format!(
        r#"{{"format":"{MANIFEST_FORMAT}","revision":3,"created":"2025-05-01T00:00:00Z","entrypoint":"policy.yaml","files":[{{"path":"policy.yaml","size":22,"sha256":""#
    )));
    assert!(text.ends_with(r#""}]}"#));
}

#[test]
fn build_skips_reserved_top_level_entries() {
    let dir = tempfile::tempdir().unwrap();
    write_source(dir.path());
    std::fs::write(dir.path().join("manifest.json"), "{}").unwrap();
    std::fs::create_dir(dir.path().join("signatures")).unwrap();
    std::fs::write(dir.path().join("signatures/old.sig"), "AAAA").unwrap();
    std::fs::create_dir(dir.path().join("root")).unwrap();
    std::fs::write(dir.path().join("root/root.json"), "{}").unwrap();
    let b = Bundle::build(dir.path(), 1, "policy.yaml", ts("2025-05-01T00:00:00Z")).unwrap();
    let paths: Vec<_> = b.manifest().files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["policy.yaml", "tests/allow.yaml"]);
    assert_eq!(b.signatures().count(), 0);
}

#[cfg(unix)]
#[test]
fn build_refuses_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    write_source(dir.path());
    std::os::unix::fs::symlink("/etc/hostname", dir.path().join("tests/leak.yaml")).unwrap();
    let err = Bundle::build(dir.path(), 1, "policy.yaml", now()).unwrap_err();
    assert_eq!(err.reason(), "unsupported_entry");
}

#[test]
fn build_requires_the_entrypoint() {
    let dir = tempfile::tempdir().unwrap();
    write_source(dir.path());
    let err = Bundle::build(dir.path(), 1, "missing.yaml", now()).unwrap_err();
    assert_eq!(err.reason(), "malformed_manifest");
}

#[test]
fn a_directory_bundle_reads_like_its_archive() {
    let k = key();
    let mut b = bundle(2);
    b.sign("ops-1", &k).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (path, data) in unpack(&b.to_tar().unwrap()) {
        let target = dir.path().join(&path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, data).unwrap();
    }
    let from_dir = Bundle::from_dir(dir.path(), &Limits::default()).unwrap();
    assert_eq!(from_dir.manifest_bytes(), b.manifest_bytes());
    assert_eq!(from_dir.to_tar().unwrap(), b.to_tar().unwrap());
    root(1, 1, &[("ops-1", &k)])
        .verify(&from_dir, now())
        .unwrap();
}

#[cfg(unix)]
#[test]
fn a_directory_bundle_with_a_symlink_is_refused() {
    let mut b = bundle(2);
    b.sign("ops-1", &key()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (path, data) in unpack(&b.to_tar().unwrap()) {
        let target = dir.path().join(&path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, data).unwrap();
    }
    let policy = dir.path().join("policy.yaml");
    let real = dir.path().join("elsewhere.yaml");
    std::fs::rename(&policy, &real).unwrap();
    std::os::unix::fs::symlink(&real, &policy).unwrap();
    std::fs::remove_file(&real).ok();
    let err = Bundle::from_dir(dir.path(), &Limits::default()).unwrap_err();
    assert_eq!(err.reason(), "unsupported_entry");
}

#[test]
fn gnu_tar_extracts_what_we_write_and_we_read_what_it_writes() {
    let Ok(status) = std::process::Command::new("tar").arg("--version").output() else {
        eprintln!("tar is not installed; skipped");
        return;
    };
    assert!(status.status.success());
    let k = key();
    let mut b = bundle(4);
    b.sign("ops-1", &k).unwrap();
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("bundle.tar");
    std::fs::write(&archive, b.to_tar().unwrap()).unwrap();
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let ok = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&out)
        .status()
        .unwrap();
    assert!(ok.success());
    let extracted = Bundle::from_dir(&out, &Limits::default()).unwrap();
    assert_eq!(extracted.digest(), b.digest());

    // GNU tar's own ustar archive of that directory (with directory entries).
    let repacked = work.path().join("gnu.tar");
    let ok = std::process::Command::new("tar")
        .args(["--format=ustar", "-cf"])
        .arg(&repacked)
        .arg("-C")
        .arg(&out)
        .args(["manifest.json", "policy.yaml", "signatures", "tests"])
        .status()
        .unwrap();
    assert!(ok.success());
    let again = load(&std::fs::read(&repacked).unwrap()).unwrap();
    root(1, 1, &[("ops-1", &k)]).verify(&again, now()).unwrap();
}
