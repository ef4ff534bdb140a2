use super::*;

fn limits() -> Limits {
    Limits::default()
}

/// One hand-made entry: raw name bytes, type, data, then padding.
fn entry(name: &[u8], kind: EntryType, data: &[u8]) -> Vec<u8> {
    let mut header = Header::new_ustar();
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(kind);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
    out
}

fn archive(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out: Vec<u8> = entries.concat();
    out.extend_from_slice(&[0; 2 * BLOCK]);
    out
}

fn reason(bytes: &[u8]) -> &'static str {
    read_tar(bytes, &limits()).unwrap_err().reason()
}

#[test]
fn written_archives_read_back() {
    let bytes = write_tar([("a.yaml", &b"abc"[..]), ("d/b.yaml", &[7u8; 700][..])]).unwrap();
    assert_eq!(bytes.len() % BLOCK, 0);
    let files = read_tar(&bytes, &limits()).unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files["a.yaml"], b"abc");
    assert_eq!(files["d/b.yaml"], vec![7u8; 700]);
}

#[test]
fn written_headers_are_deterministic_ustar() {
    let bytes = write_tar([("a.yaml", &b"abc"[..])]).unwrap();
    let header = header_of(&bytes[..BLOCK]);
    assert!(header.as_ustar().is_some());
    assert_eq!(header.mode().unwrap(), 0o644);
    assert_eq!(header.uid().unwrap(), 0);
    assert_eq!(header.gid().unwrap(), 0);
    assert_eq!(header.mtime().unwrap(), 0);
    assert_eq!(header.username_bytes(), Some(&b""[..]));
    assert_eq!(header.groupname_bytes(), Some(&b""[..]));
    assert_eq!(bytes, write_tar([("a.yaml", &b"abc"[..])]).unwrap());
}

#[test]
fn directory_entries_are_accepted_and_ignored() {
    let bytes = archive(&[
        entry(b"tests/", EntryType::Directory, b""),
        entry(b"tests/a.yaml", EntryType::Regular, b"x"),
    ]);
    let files = read_tar(&bytes, &limits()).unwrap();
    assert_eq!(files.keys().collect::<Vec<_>>(), ["tests/a.yaml"]);
}

#[test]
fn gnu_headers_without_extensions_are_accepted() {
    let mut header = Header::new_gnu();
    header.set_path("a.yaml").unwrap();
    header.set_size(1);
    header.set_entry_type(EntryType::Regular);
    header.set_cksum();
    let mut e = header.as_bytes().to_vec();
    e.push(b'z');
    e.resize(2 * BLOCK, 0);
    assert_eq!(read_tar(&archive(&[e]), &limits()).unwrap()["a.yaml"], b"z");
}

#[test]
fn every_truncation_is_refused() {
    let bytes = write_tar([("a.yaml", &[1u8; 600][..]), ("b.yaml", &b"b"[..])]).unwrap();
    for cut in 0..bytes.len() {
        assert_eq!(reason(&bytes[..cut]), "truncated", "cut at {cut}");
    }
    assert!(read_tar(&bytes, &limits()).is_ok());
}

#[test]
fn data_after_the_end_marker_is_refused() {
    let mut bytes = write_tar([("a.yaml", &b"abc"[..])]).unwrap();
    let mut padded = bytes.clone();
    padded.extend_from_slice(&[0; 4 * BLOCK]);
    assert!(read_tar(&padded, &limits()).is_ok(), "zero padding is fine");
    bytes.extend_from_slice(&entry(b"late.yaml", EntryType::Regular, b"x"));
    assert_eq!(reason(&bytes), "malformed_archive");
}

#[test]
fn a_single_zero_block_between_entries_is_refused() {
    let mut bytes = entry(b"a.yaml", EntryType::Regular, b"a");
    bytes.extend_from_slice(&[0; BLOCK]);
    bytes.extend_from_slice(&archive(&[entry(b"b.yaml", EntryType::Regular, b"b")]));
    assert_eq!(reason(&bytes), "malformed_archive");
}

#[test]
fn bad_checksum_is_refused() {
    let mut bytes = archive(&[entry(b"a.yaml", EntryType::Regular, b"a")]);
    bytes[0] = b'b';
    assert_eq!(reason(&bytes), "malformed_archive");
}

#[test]
fn pre_posix_headers_are_refused() {
    let mut header = Header::new_old();
    header.as_old_mut().name[..6].copy_from_slice(b"a.yaml");
    header.set_size(0);
    header.set_cksum();
    assert_eq!(
        reason(&archive(&[header.as_bytes().to_vec()])),
        "malformed_archive"
    );
}

#[test]
fn special_entries_are_refused_by_kind() {
    for (kind, name) in [
        (EntryType::Symlink, "symbolic link"),
        (EntryType::Link, "hard link"),
        (EntryType::Char, "character device"),
        (EntryType::Block, "block device"),
        (EntryType::Fifo, "fifo"),
        (EntryType::XHeader, "pax extended header"),
        (EntryType::XGlobalHeader, "pax global header"),
        (EntryType::GNULongName, "gnu long name header"),
    ] {
        let bytes = archive(&[entry(b"x", kind, b"")]);
        match read_tar(&bytes, &limits()) {
            Err(BundleError::UnsupportedEntry { kind, .. }) => assert_eq!(kind, name),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn unsafe_names_are_refused() {
    for name in [&b"../x"[..], b"/etc/passwd", b"./a", b"a\\b", b"a//b"] {
        let bytes = archive(&[entry(name, EntryType::Regular, b"x")]);
        assert_eq!(reason(&bytes), "unsafe_path", "{name:?}");
    }
}

#[test]
fn nul_inside_the_name_field_is_refused() {
    let bytes = archive(&[entry(b"a.yaml\0../../x", EntryType::Regular, b"x")]);
    match read_tar(&bytes, &limits()) {
        Err(BundleError::UnsafePath { fault, .. }) => assert_eq!(fault, PathFault::Nul),
        other => panic!("{other:?}"),
    }
}

#[test]
fn ustar_prefix_is_part_of_the_path() {
    let mut header = Header::new_ustar();
    header.as_old_mut().name[..6].copy_from_slice(b"a.yaml");
    header.as_ustar_mut().unwrap().prefix[..2].copy_from_slice(b"..");
    header.set_size(0);
    header.set_cksum();
    let bytes = archive(&[header.as_bytes().to_vec()]);
    match read_tar(&bytes, &limits()) {
        Err(BundleError::UnsafePath { fault, .. }) => {
            assert_eq!(fault, PathFault::ParentComponent)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn duplicates_are_refused() {
    let twice = archive(&[
        entry(b"a.yaml", EntryType::Regular, b"1"),
        entry(b"a.yaml", EntryType::Regular, b"2"),
    ]);
    assert_eq!(reason(&twice), "duplicate_entry");
    let dir_and_file = archive(&[
        entry(b"a.yaml/", EntryType::Directory, b""),
        entry(b"a.yaml", EntryType::Regular, b"2"),
    ]);
    assert_eq!(reason(&dir_and_file), "duplicate_entry");
}

#[test]
fn a_file_used_as_a_directory_is_refused() {
    let bytes = archive(&[
        entry(b"a", EntryType::Regular, b"1"),
        entry(b"a/b", EntryType::Regular, b"2"),
    ]);
    assert_eq!(reason(&bytes), "unsafe_path");
}

#[test]
fn limits_are_enforced() {
    let bytes = write_tar([("a", &[0u8; 100][..]), ("b", &b"b"[..])]).unwrap();
    let tight = |f: fn(&mut Limits)| {
        let mut l = limits();
        f(&mut l);
        read_tar(&bytes, &l).unwrap_err().reason()
    };
    assert_eq!(tight(|l| l.max_bundle_bytes = 2 * 1024), "too_large");
    assert_eq!(tight(|l| l.max_entries = 1), "too_many_entries");
    assert_eq!(tight(|l| l.max_file_bytes = 99), "entry_too_large");
}

#[test]
fn a_huge_declared_size_is_refused_without_allocating() {
    let mut header = Header::new_ustar();
    header.set_path("a").unwrap();
    header.set_size(u64::MAX / 2);
    header.set_cksum();
    assert_eq!(
        reason(&archive(&[header.as_bytes().to_vec()])),
        "entry_too_large"
    );
    let mut l = limits();
    l.max_file_bytes = usize::MAX;
    assert_eq!(
        read_tar(&archive(&[header.as_bytes().to_vec()]), &l)
            .unwrap_err()
            .reason(),
        "truncated"
    );
}

#[test]
fn directories_are_read_like_archives() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    std::fs::write(dir.path().join("policy.yaml"), b"p").unwrap();
    std::fs::write(dir.path().join("tests/a.yaml"), b"t").unwrap();
    std::fs::create_dir(dir.path().join("signatures")).unwrap();
    std::fs::write(dir.path().join("signatures/x.sig"), b"s").unwrap();
    let all = read_dir(dir.path(), &limits(), false).unwrap();
    assert_eq!(
        all.keys().collect::<Vec<_>>(),
        ["policy.yaml", "signatures/x.sig", "tests/a.yaml"]
    );
    let content = read_dir(dir.path(), &limits(), true).unwrap();
    assert_eq!(
        content.keys().collect::<Vec<_>>(),
        ["policy.yaml", "tests/a.yaml"]
    );
}

#[cfg(unix)]
#[test]
fn symlinks_in_directories_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.yaml"), b"p").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link.yaml")).unwrap();
    assert_eq!(
        read_dir(dir.path(), &limits(), false).unwrap_err().reason(),
        "unsupported_entry"
    );
}

#[test]
fn directory_limits_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a"), [0u8; 100]).unwrap();
    std::fs::write(dir.path().join("b"), [0u8; 100]).unwrap();
    let mut l = limits();
    l.max_file_bytes = 99;
    assert_eq!(
        read_dir(dir.path(), &l, false).unwrap_err().reason(),
        "entry_too_large"
    );
    let mut l = limits();
    l.max_bundle_bytes = 150;
    assert_eq!(
        read_dir(dir.path(), &l, false).unwrap_err().reason(),
        "too_large"
    );
    let mut l = limits();
    l.max_entries = 1;
    assert_eq!(
        read_dir(dir.path(), &l, false).unwrap_err().reason(),
        "too_many_entries"
    );
}
