use super::*;

#[test]
fn well_formed_json_passes() {
    assert_eq!(
        check(br#"{"a":1,"b":[{"c":"d"},{"c":"e"}],"f":null}"#),
        Ok(())
    );
    assert_eq!(check(b" [1, 2.5, true, \"x\"] "), Ok(()));
}

#[test]
fn duplicate_members_are_found_at_any_depth() {
    assert_eq!(check(br#"{"a":1,"a":2}"#), Err(Fault::Duplicate));
    assert_eq!(check(br#"{"x":[{"a":1,"a":1}]}"#), Err(Fault::Duplicate));
    assert_eq!(
        check(br#"{"a":1,"\u0061":2}"#),
        Err(Fault::Duplicate),
        "escaped name"
    );
    assert_eq!(
        check(br#"{"a":{"a":1}}"#),
        Ok(()),
        "same name at other levels"
    );
}

#[test]
fn deep_nesting_is_refused() {
    let deep = format!(
        "{}{}",
        "[".repeat(MAX_JSON_DEPTH + 1),
        "]".repeat(MAX_JSON_DEPTH + 1)
    );
    assert_eq!(check(deep.as_bytes()), Err(Fault::TooDeep));
    let ok = format!(
        "{}{}",
        "[".repeat(MAX_JSON_DEPTH),
        "]".repeat(MAX_JSON_DEPTH)
    );
    assert_eq!(check(ok.as_bytes()), Ok(()));
}

#[test]
fn syntax_errors_and_trailing_data_are_refused() {
    assert_eq!(check(b"{"), Err(Fault::Syntax));
    assert_eq!(check(b"{} {}"), Err(Fault::Syntax));
    assert_eq!(check(b"\xff"), Err(Fault::Syntax));
}

#[test]
fn parse_maps_duplicates_to_their_own_error() {
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Doc {
        a: u64,
    }
    let err = parse::<Doc>(br#"{"a":1,"a":2}"#, "doc", BundleError::MalformedManifest).unwrap_err();
    assert_eq!(err.reason(), "duplicate_member");
    let err = parse::<Doc>(br#"{"a":"x"}"#, "doc", BundleError::MalformedManifest).unwrap_err();
    assert_eq!(err.reason(), "malformed_manifest");
    assert_eq!(
        parse::<Doc>(br#"{"a":7}"#, "doc", BundleError::MalformedManifest)
            .unwrap()
            .a,
        7
    );
}
