use super::*;

const H: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn manifest() -> Manifest {
    Manifest {
        format: MANIFEST_FORMAT.to_owned(),
        revision: 7,
        created: "2025-01-02T03:04:05Z".to_owned(),
        entrypoint: "policy.yaml".to_owned(),
        files: vec![
            FileEntry {
                path: "policy.yaml".to_owned(),
                size: 0,
                sha256: H.to_owned(),
            },
            FileEntry {
                path: "tests/a.yaml".to_owned(),
                size: 0,
                sha256: H.to_owned(),
            },
        ],
    }
}

fn reason(m: &Manifest) -> &'static str {
    m.validate().unwrap_err().reason()
}

#[test]
fn canonical_bytes_have_the_documented_form() {
    let bytes = manifest().to_bytes().unwrap();
    assert_eq!(
        String::from_utf8(bytes.clone()).unwrap(),
        format!(
            r#"{{"format":"portcullis-bundle-v1","revision":7,"created":"2025-01-02T03:04:05Z","entrypoint":"policy.yaml","files":[{{"path":"policy.yaml","size":0,"sha256":"{H}"}},{{"path":"tests/a.yaml","size":0,"sha256":"{H}"}}]}}"#
        )
    );
    assert_eq!(Manifest::parse(&bytes).unwrap(), manifest());
}

#[test]
fn sha256_hex_matches_a_known_vector() {
    assert_eq!(sha256_hex(b""), H);
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn unknown_fields_are_refused() {
    let text = String::from_utf8(manifest().to_bytes().unwrap()).unwrap();
    let extra = text.replacen('{', r#"{"signed_by":"me","#, 1);
    assert_eq!(
        Manifest::parse(extra.as_bytes()).unwrap_err().reason(),
        "malformed_manifest"
    );
    let extra_in_file = text.replacen(r#""size":0"#, r#""size":0,"mode":"0755""#, 1);
    assert_eq!(
        Manifest::parse(extra_in_file.as_bytes())
            .unwrap_err()
            .reason(),
        "malformed_manifest"
    );
}

#[test]
fn duplicate_members_are_refused() {
    let text = String::from_utf8(manifest().to_bytes().unwrap()).unwrap();
    let dup = text.replacen(r#""revision":7"#, r#""revision":7,"revision":99"#, 1);
    assert_eq!(
        Manifest::parse(dup.as_bytes()).unwrap_err().reason(),
        "duplicate_member"
    );
}

#[test]
fn oversized_manifest_is_refused_before_parsing() {
    let big = vec![b' '; MAX_MANIFEST_BYTES + 1];
    assert_eq!(
        Manifest::parse(&big).unwrap_err().reason(),
        "entry_too_large"
    );
}

#[test]
fn field_rules_are_enforced() {
    let mut m = manifest();
    m.format = "portcullis-bundle-v2".to_owned();
    assert_eq!(reason(&m), "malformed_manifest");

    let mut m = manifest();
    m.revision = 0;
    assert_eq!(reason(&m), "malformed_manifest");

    for created in ["2025-01-02T03:04:05+01:00", "yesterday", "2025-01-02", ""] {
        let mut m = manifest();
        m.created = created.to_owned();
        assert_eq!(reason(&m), "malformed_manifest", "{created}");
    }

    let mut m = manifest();
    m.entrypoint = "other.yaml".to_owned();
    assert_eq!(reason(&m), "malformed_manifest");

    let mut m = manifest();
    m.files.reverse();
    assert_eq!(reason(&m), "malformed_manifest", "unsorted");

    let mut m = manifest();
    let first = m.files[0].clone();
    m.files.insert(0, first);
    assert_eq!(reason(&m), "malformed_manifest", "listed twice");

    for sha in [&H[1..], &H.to_uppercase(), &format!("{}g", &H[1..])] {
        let mut m = manifest();
        m.files[0].sha256 = sha.to_string();
        assert_eq!(reason(&m), "malformed_manifest", "{sha}");
    }
}

#[test]
fn unsafe_and_reserved_paths_are_refused() {
    for path in ["../policy.yaml", "/policy.yaml", "a\\b", "./p"] {
        let mut m = manifest();
        m.files[0].path = path.to_owned();
        assert_eq!(reason(&m), "unsafe_path", "{path}");
    }
    for path in ["manifest.json", "root/root.json", "signatures/a.sig"] {
        let mut m = manifest();
        m.files[1].path = path.to_owned();
        m.files.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(reason(&m), "malformed_manifest", "{path}");
    }
}

#[test]
fn a_file_cannot_also_be_a_directory() {
    let mut m = manifest();
    m.files[1].path = "policy.yaml/x".to_owned();
    assert_eq!(reason(&m), "unsafe_path");
}

#[test]
fn file_lookup() {
    let m = manifest();
    assert_eq!(m.file("tests/a.yaml").unwrap().path, "tests/a.yaml");
    assert!(m.file("nope").is_none());
}
