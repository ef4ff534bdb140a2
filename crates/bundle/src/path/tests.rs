use super::*;

fn fault(raw: &[u8]) -> PathFault {
    match check(raw) {
        Err(BundleError::UnsafePath { fault, .. }) => fault,
        other => panic!("expected an unsafe path for {raw:?}, got {other:?}"),
    }
}

#[test]
fn plain_relative_paths_are_accepted() {
    assert_eq!(check(b"policy.yaml").unwrap(), "policy.yaml");
    assert_eq!(check(b"tests/a/b.yaml").unwrap(), "tests/a/b.yaml");
    assert_eq!(check(b"..hidden").unwrap(), "..hidden");
    assert_eq!(check("é.yaml".as_bytes()).unwrap(), "é.yaml");
}

#[test]
fn each_unsafe_form_has_its_own_fault() {
    assert_eq!(fault(b""), PathFault::Empty);
    assert_eq!(fault(b"/etc/passwd"), PathFault::Absolute);
    assert_eq!(fault(b"../x"), PathFault::ParentComponent);
    assert_eq!(fault(b"a/../../x"), PathFault::ParentComponent);
    assert_eq!(fault(b"a/.."), PathFault::ParentComponent);
    assert_eq!(fault(b"./policy.yaml"), PathFault::CurrentComponent);
    assert_eq!(fault(b"a//b"), PathFault::EmptyComponent);
    assert_eq!(fault(b"a/"), PathFault::EmptyComponent);
    assert_eq!(fault(b"a\\..\\b"), PathFault::Backslash);
    assert_eq!(fault(b"a\0b"), PathFault::Nul);
    assert_eq!(fault(b"a\nb"), PathFault::ControlCharacter);
    assert_eq!(fault(b"a\x1b[31m"), PathFault::ControlCharacter);
    assert_eq!(fault(b"\xff.yaml"), PathFault::NotUtf8);
    assert_eq!(fault(&[b'a'; MAX_PATH_BYTES + 1]), PathFault::TooLong);
    assert!(check(&[b'a'; MAX_PATH_BYTES]).is_ok());
}

#[test]
fn ancestors_lists_parent_directories() {
    assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), ["a", "a/b"]);
    assert_eq!(ancestors("a").count(), 0);
}

#[test]
fn fault_codes_are_stable() {
    assert_eq!(PathFault::ParentComponent.code(), "parent_component");
    assert_eq!(PathFault::Absolute.code(), "absolute");
}
