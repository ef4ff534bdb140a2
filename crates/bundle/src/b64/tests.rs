use super::*;

#[test]
fn accepts_plain_trailing_newline_and_wrapped_lines() {
    let raw: Vec<u8> = (0u8..72).collect();
    let b64 = STANDARD.encode(&raw);
    assert_eq!(decode_signature(b64.as_bytes()).unwrap(), raw);
    assert_eq!(
        decode_signature(format!("{b64}\n").as_bytes()).unwrap(),
        raw
    );
    assert_eq!(
        decode_signature(format!("{b64}\r\n").as_bytes()).unwrap(),
        raw
    );
    let (a, b) = b64.split_at(76);
    assert_eq!(
        decode_signature(format!("{a}\n{b}\n").as_bytes()).unwrap(),
        raw
    );
    assert_eq!(
        decode_signature(encode_signature(&raw).as_bytes()).unwrap(),
        raw
    );
}

#[test]
fn refuses_other_encodings() {
    let raw = [7u8; 64];
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfb; 64]);
    assert!(
        decode_signature(url.as_bytes()).is_err(),
        "url-safe alphabet"
    );
    let unpadded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(raw);
    assert!(
        decode_signature(unpadded.as_bytes()).is_err(),
        "missing padding"
    );
    let spaced = format!(" {}", STANDARD.encode(raw));
    assert!(decode_signature(spaced.as_bytes()).is_err(), "spaces");
    assert!(decode_signature(b"").is_err());
    assert!(decode_signature(b"\n").is_err());
    assert!(decode_signature(b"!!!!").is_err());
}

#[test]
fn refuses_oversized_signatures() {
    let raw = vec![1u8; MAX_SIGNATURE_BYTES + 1];
    assert_eq!(
        decode_signature(STANDARD.encode(&raw).as_bytes()),
        Err("signature too long")
    );
    assert!(decode_signature(&vec![b'A'; MAX_SIGNATURE_FILE_BYTES + 4]).is_err());
}
