use x509_parser::prelude::FromDer;

use super::*;

const CN: &[u8] = &[0x55, 0x04, 0x03];
const O: &[u8] = &[0x55, 0x04, 0x0a];
const OU: &[u8] = &[0x55, 0x04, 0x0b];
const C: &[u8] = &[0x55, 0x04, 0x06];
const DC: &[u8] = &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19];
const EMAIL: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01];
/// 1.2.3.4, which has no short name.
const UNKNOWN: &[u8] = &[0x2a, 0x03, 0x04];

const UTF8: u8 = 0x0c;
const PRINTABLE: u8 = 0x13;
const BMP: u8 = 0x1e;
const UNIVERSAL: u8 = 0x1c;
const INTEGER: u8 = 0x02;

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// One attribute: (attribute type OID, value tag, value bytes).
type Attr<'a> = (&'a [u8], u8, &'a [u8]);

/// DER of a Name: RDNs in certificate order, each a set of attributes.
fn name(rdns: &[&[Attr<'_>]]) -> Vec<u8> {
    let mut seq = Vec::new();
    for rdn in rdns {
        let mut set = Vec::new();
        for (oid, tag, value) in *rdn {
            let mut atv = tlv(0x06, oid);
            atv.extend(tlv(*tag, value));
            set.extend(tlv(0x30, &atv));
        }
        seq.extend(tlv(0x31, &set));
    }
    tlv(0x30, &seq)
}

fn with_name<T>(der: &[u8], f: impl FnOnce(&X509Name<'_>) -> T) -> T {
    let (rest, parsed) = X509Name::from_der(der).unwrap();
    assert!(rest.is_empty());
    f(&parsed)
}

fn rfc(der: &[u8]) -> String {
    with_name(der, rfc4514)
}

fn attrs(der: &[u8]) -> Vec<(String, String)> {
    with_name(der, attributes)
}

#[test]
fn rdns_are_written_in_reverse_order_without_spaces() {
    let der = name(&[
        &[(C, PRINTABLE, b"DE")],
        &[(O, UTF8, b"Example")],
        &[(OU, UTF8, b"Payments")],
        &[(CN, UTF8, b"web")],
    ]);
    assert_eq!(rfc(&der), "CN=web,OU=Payments,O=Example,C=DE");
    // x509-parser's Display is a different form; the identity must not
    // use it.
    assert_ne!(with_name(&der, |n| n.to_string()), rfc(&der));
}

#[test]
fn attributes_are_in_certificate_order_and_unescaped() {
    let der = name(&[
        &[(DC, PRINTABLE, b"org")],
        &[(DC, PRINTABLE, b"example")],
        &[(CN, UTF8, b"a,b")],
        &[(EMAIL, 0x16, b"w@example.org")],
    ]);
    assert_eq!(
        attrs(&der),
        [
            ("DC".to_owned(), "org".to_owned()),
            ("DC".to_owned(), "example".to_owned()),
            ("CN".to_owned(), "a,b".to_owned()),
            ("emailAddress".to_owned(), "w@example.org".to_owned()),
        ]
    );
    assert_eq!(
        rfc(&der),
        "emailAddress=w@example.org,CN=a\\,b,DC=example,DC=org"
    );
}

#[test]
fn multi_valued_rdn_is_joined_with_plus() {
    let der = name(&[
        &[(CN, UTF8, b"web"), (OU, UTF8, b"ops")],
        &[(O, UTF8, b"Ex")],
    ]);
    assert_eq!(rfc(&der), "O=Ex,CN=web+OU=ops");
    assert_eq!(attrs(&der).len(), 3);
}

#[test]
fn special_characters_are_escaped() {
    let der = name(&[&[(CN, UTF8, br#"a,b+c"d\e<f>g;h"#)]]);
    assert_eq!(rfc(&der), r#"CN=a\,b\+c\"d\\e\<f\>g\;h"#);
}

#[test]
fn a_value_cannot_forge_another_attribute() {
    // A CN that reads like `CN=evil,O=Admin` in a naive join.
    let forged = name(&[&[(CN, UTF8, b"evil,O=Admin")]]);
    let real = name(&[&[(O, UTF8, b"Admin")], &[(CN, UTF8, b"evil")]]);
    assert_eq!(rfc(&forged), "CN=evil\\,O=Admin");
    assert_eq!(rfc(&real), "CN=evil,O=Admin");
    assert_ne!(rfc(&forged), rfc(&real));
}

#[test]
fn leading_hash_and_edge_spaces_are_escaped() {
    assert_eq!(rfc(&name(&[&[(CN, UTF8, b"#x")]])), "CN=\\#x");
    assert_eq!(rfc(&name(&[&[(CN, UTF8, b"x#")]])), "CN=x#");
    assert_eq!(rfc(&name(&[&[(CN, UTF8, b" a b ")]])), "CN=\\ a b\\ ");
    assert_eq!(rfc(&name(&[&[(CN, UTF8, b" ")]])), "CN=\\ ");
}

#[test]
fn control_characters_are_hex_escaped() {
    let der = name(&[&[(CN, UTF8, b"a\nb\x00c\x7f")]]);
    assert_eq!(rfc(&der), "CN=a\\0Ab\\00c\\7F");
    // The attribute keeps the real value.
    assert_eq!(attrs(&der)[0].1, "a\nb\u{0}c\u{7f}");
}

#[test]
fn unicode_passes_through() {
    let der = name(&[&[(CN, UTF8, "Jürgen Ωmega".as_bytes())]]);
    assert_eq!(rfc(&der), "CN=Jürgen Ωmega");
}

#[test]
fn bmp_and_universal_strings_are_decoded() {
    let bmp: Vec<u8> = "Zoë".encode_utf16().flat_map(u16::to_be_bytes).collect();
    let universal: Vec<u8> = "Zoë"
        .chars()
        .flat_map(|c| (c as u32).to_be_bytes())
        .collect();
    assert_eq!(rfc(&name(&[&[(CN, BMP, &bmp)]])), "CN=Zoë");
    assert_eq!(rfc(&name(&[&[(CN, UNIVERSAL, &universal)]])), "CN=Zoë");
}

#[test]
fn broken_bmp_string_falls_back_to_hex() {
    // An odd number of bytes is not UTF-16.
    let der = name(&[&[(CN, BMP, &[0x00, 0x41, 0x00])]]);
    assert_eq!(rfc(&der), "CN=#1e03004100");
    assert_eq!(attrs(&der)[0].1, "#1e03004100");
}

#[test]
fn unknown_attribute_type_is_a_dotted_oid_with_hex_value() {
    let der = name(&[&[(UNKNOWN, UTF8, b"x")], &[(CN, UTF8, b"web")]]);
    assert_eq!(rfc(&der), "CN=web,1.2.3.4=#0c0178");
    assert_eq!(
        attrs(&der),
        [
            ("1.2.3.4".to_owned(), "x".to_owned()),
            ("CN".to_owned(), "web".to_owned())
        ]
    );
}

#[test]
fn non_string_value_is_hex() {
    let der = name(&[&[(CN, INTEGER, &[0x01])]]);
    assert_eq!(rfc(&der), "CN=#020101");
}

#[test]
fn long_values_use_long_form_length_in_hex() {
    let value = vec![b'a'; 200];
    let der = name(&[&[(UNKNOWN, UTF8, &value)]]);
    let out = rfc(&der);
    assert!(out.starts_with("1.2.3.4=#0c81c8616161"), "{out}");
    assert_eq!(out.len(), "1.2.3.4=#".len() + 2 * (3 + 200));
}

#[test]
fn empty_name_is_empty_string() {
    let der = name(&[]);
    assert_eq!(rfc(&der), "");
    assert!(attrs(&der).is_empty());
}
