use super::*;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn valid_header_yields_trace_id() {
    assert_eq!(VALID.len(), TRACEPARENT_LEN);
    assert_eq!(parse_traceparent(VALID).as_deref(), Some(TRACE_ID));
}

#[test]
fn any_flags_are_accepted() {
    for flags in ["00", "01", "ff", "a9"] {
        let value = format!("00-{TRACE_ID}-00f067aa0ba902b7-{flags}");
        assert_eq!(
            parse_traceparent(&value).as_deref(),
            Some(TRACE_ID),
            "{value}"
        );
    }
}

#[test]
fn later_version_may_carry_extra_fields() {
    let value = format!("01-{TRACE_ID}-00f067aa0ba902b7-01-what-ever");
    assert_eq!(parse_traceparent(&value).as_deref(), Some(TRACE_ID));
    let exact = format!("cc-{TRACE_ID}-00f067aa0ba902b7-01");
    assert_eq!(parse_traceparent(&exact).as_deref(), Some(TRACE_ID));
}

#[test]
fn later_version_extra_data_must_follow_a_dash() {
    let value = format!("01-{TRACE_ID}-00f067aa0ba902b7-01x");
    assert_eq!(parse_traceparent(&value), None);
}

#[test]
fn version_00_with_extra_fields_is_rejected() {
    assert_eq!(parse_traceparent(&format!("{VALID}-extra")), None);
    assert_eq!(parse_traceparent(&format!("{VALID} ")), None);
}

#[test]
fn version_ff_is_rejected() {
    assert_eq!(parse_traceparent(&VALID.replacen("00", "ff", 1)), None);
}

#[test]
fn non_hex_or_uppercase_version_is_rejected() {
    for version in ["0g", "0A", "FF", "-0", "0"] {
        let value = format!("{version}{}", &VALID[2..]);
        assert_eq!(parse_traceparent(&value), None, "{value}");
    }
}

#[test]
fn uppercase_hex_is_rejected() {
    assert_eq!(parse_traceparent(&VALID.replace("4bf9", "4BF9")), None);
    assert_eq!(parse_traceparent(&VALID.replace("00f0", "00F0")), None);
    assert_eq!(parse_traceparent(&VALID.replace("-01", "-0A")), None);
}

#[test]
fn non_hex_characters_are_rejected() {
    assert_eq!(parse_traceparent(&VALID.replace("4bf9", "4bz9")), None);
    assert_eq!(parse_traceparent(&VALID.replace("00f0", "00g0")), None);
    assert_eq!(parse_traceparent(&VALID.replace("-01", "-0x")), None);
}

#[test]
fn all_zero_trace_id_is_rejected() {
    let value = format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32));
    assert_eq!(parse_traceparent(&value), None);
}

#[test]
fn all_zero_parent_id_is_rejected() {
    let value = format!("00-{TRACE_ID}-{}-01", "0".repeat(16));
    assert_eq!(parse_traceparent(&value), None);
}

#[test]
fn wrong_lengths_are_rejected() {
    assert_eq!(parse_traceparent(""), None);
    assert_eq!(parse_traceparent("00"), None);
    assert_eq!(parse_traceparent(&VALID[..54]), None);
    // Trace id one digit short, parent id one digit long: same total length.
    let shifted = format!("00-{}-{}0-01", &TRACE_ID[..31], "00f067aa0ba902b7");
    assert_eq!(shifted.len(), TRACEPARENT_LEN);
    assert_eq!(parse_traceparent(&shifted), None);
}

#[test]
fn wrong_separators_are_rejected() {
    for at in [2, 35, 52] {
        let mut bytes = VALID.as_bytes().to_vec();
        bytes[at] = b'_';
        let value = String::from_utf8(bytes).unwrap();
        assert_eq!(parse_traceparent(&value), None, "{value}");
    }
}

#[test]
fn multibyte_input_does_not_panic() {
    let value = format!("00-{}é-00f067aa0ba902b7-01", &TRACE_ID[..30]);
    assert_eq!(parse_traceparent(&value), None);
    assert_eq!(parse_traceparent("éé"), None);
    assert_eq!(parse_traceparent(&"é".repeat(40)), None);
}
