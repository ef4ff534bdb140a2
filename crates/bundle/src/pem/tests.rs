use super::*;

#[test]
fn encode_then_parse_round_trips() {
    let der: Vec<u8> = (0..=255u8).cycle().take(300).collect();
    let text = encode("PUBLIC KEY", &der);
    assert!(text.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    assert!(text.lines().all(|l| l.len() <= 64));
    assert_eq!(parse_one(&text, "PUBLIC KEY").unwrap().as_slice(), der);
}

#[test]
fn crlf_and_blank_lines_around_blocks_are_accepted() {
    let text = encode("PUBLIC KEY", b"abc").replace('\n', "\r\n");
    assert_eq!(
        parse_one(&format!("\r\n{text}\r\n"), "PUBLIC KEY")
            .unwrap()
            .as_slice(),
        b"abc"
    );
}

#[test]
fn malformed_pem_is_refused() {
    let good = encode("PUBLIC KEY", b"abc").to_string();
    assert_eq!(parse_one("", "PUBLIC KEY").unwrap_err(), "no pem block");
    assert_eq!(
        parse_one(&good, "PRIVATE KEY").unwrap_err(),
        "unexpected pem label"
    );
    assert_eq!(
        parse_one(&format!("{good}{good}"), "PUBLIC KEY").unwrap_err(),
        "more than one pem block"
    );
    assert_eq!(
        parse_one(&format!("junk\n{good}"), "PUBLIC KEY").unwrap_err(),
        "text outside a pem block"
    );
    assert_eq!(
        parse_one(&good.replace("END PUBLIC", "END PRIVATE"), "PUBLIC KEY").unwrap_err(),
        "pem end label does not match its begin label"
    );
    assert_eq!(
        parse_one(good.trim_end().rsplit_once('\n').unwrap().0, "PUBLIC KEY").unwrap_err(),
        "pem block has no end line"
    );
    assert_eq!(
        parse_one(&good.replace("YWJj", "YW*j"), "PUBLIC KEY").unwrap_err(),
        "pem body is not base64"
    );
    assert_eq!(
        parse(&"A".repeat(MAX_PEM_BYTES + 1)).err(),
        Some("pem text too long")
    );
}
