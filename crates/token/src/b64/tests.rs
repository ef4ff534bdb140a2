use super::*;

#[test]
fn decodes_canonical_base64url() {
    assert_eq!(decode("Zm9v").unwrap(), b"foo");
    assert_eq!(decode("Zm8").unwrap(), b"fo");
    assert_eq!(decode("-_8").unwrap(), [0xfb, 0xff]);
    assert_eq!(decode("").unwrap(), b"");
}

#[test]
fn refuses_padding() {
    assert!(decode("Zm8=").is_none());
    assert!(decode("Zg==").is_none());
}

#[test]
fn refuses_standard_alphabet() {
    assert!(decode("+/8").is_none());
}

#[test]
fn refuses_whitespace() {
    assert!(decode("Zm 9v").is_none());
    assert!(decode(" Zm9v").is_none());
    assert!(decode("Zm9v\n").is_none());
}

#[test]
fn refuses_non_canonical_trailing_bits() {
    // "Zm8" is canonical for "fo"; "Zm9" has the same bytes plus stray bits.
    assert!(decode("Zm9").is_none());
    assert!(decode("AB").is_none());
    assert!(decode("AA").is_some());
}

#[test]
fn refuses_impossible_length() {
    assert!(decode("Z").is_none());
    assert!(decode("Zm9vY").is_none());
}

#[test]
fn encode_round_trip() {
    for data in [&b""[..], b"a", b"ab", b"abc", &[0xff, 0xfe, 0xfd, 0xfc]] {
        assert_eq!(decode(&encode(data)).unwrap(), data);
    }
}
