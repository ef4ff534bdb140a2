use std::path::PathBuf;

use super::files::{decode_signature, parse_id_file};

#[test]
fn decode_signature_accepts_one_line_with_trailing_newline() {
    assert_eq!(decode_signature(b"AAEC/w==\n").unwrap(), vec![0, 1, 2, 255]);
}

#[test]
fn decode_signature_accepts_wrapped_lines() {
    // `base64` wraps at 76 columns, `openssl base64` at 64.
    assert_eq!(
        decode_signature(b"AA\r\nEC\n/w==\n").unwrap(),
        vec![0, 1, 2, 255]
    );
}

#[test]
fn decode_signature_refuses_empty_input() {
    assert_eq!(decode_signature(b" \n").unwrap_err(), "empty signature");
}

#[test]
fn decode_signature_refuses_url_safe_alphabet_and_garbage() {
    assert!(decode_signature(b"AAEC_w==").is_err());
    assert!(decode_signature(b"not base64!").is_err());
    assert!(decode_signature(b"AAEC/w").is_err(), "missing padding");
}

#[test]
fn parse_id_file_splits_at_the_first_equals_sign() {
    assert_eq!(
        parse_id_file("ops-1=sigs/a=b.sig").unwrap(),
        ("ops-1".to_owned(), PathBuf::from("sigs/a=b.sig"))
    );
}

#[test]
fn parse_id_file_refuses_missing_parts() {
    for bad in ["ops-1", "=x.sig", "ops-1=", ""] {
        assert!(parse_id_file(bad).is_err(), "{bad}");
    }
}
