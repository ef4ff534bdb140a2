//! Distinguished names in RFC 4514 string form.
//!
//! x509-parser's `Display` for `X509Name` is not RFC 4514: it writes the
//! RDNs in certificate order, separates them with `", "` and does not
//! escape special characters, so `CN=a\,O=b` and `CN=a` + `O=b` would
//! print alike. This module writes the RFC 4514 form: RDNs in reverse
//! order separated by `,`, multi-valued RDNs joined with `+`, values
//! escaped (§2.4), attribute types by short name when known and as a
//! dotted OID with a `#`-hex BER value otherwise.

use x509_parser::asn1_rs::{Any, Tag};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

use portcullis_identity::DN_SHORT_NAMES as SHORT_NAMES;

/// The name of an attribute type: its short name, else its dotted OID.
fn type_name(attr: &AttributeTypeAndValue<'_>) -> (String, bool) {
    let oid = attr.attr_type().to_id_string();
    match SHORT_NAMES.iter().find(|(o, _)| *o == oid) {
        Some((_, name)) => ((*name).to_owned(), true),
        None => (oid, false),
    }
}

/// The attribute's value as text, for the string types X.520 uses.
fn decode_value(value: &Any<'_>) -> Option<String> {
    let data = value.data;
    match value.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString => std::str::from_utf8(data).ok().map(str::to_owned),
        // T.61 in practice carries Latin-1.
        Tag::TeletexString => Some(data.iter().map(|b| char::from(*b)).collect()),
        Tag::BmpString => {
            if data.len() % 2 != 0 {
                return None;
            }
            let units = data
                .chunks_exact(2)
                .map(|c| {
                    Some(u16::from_be_bytes([
                        c.first().copied()?,
                        c.get(1).copied()?,
                    ]))
                })
                .collect::<Option<Vec<u16>>>()?;
            String::from_utf16(&units).ok()
        }
        Tag::UniversalString => {
            if data.len() % 4 != 0 {
                return None;
            }
            data.chunks_exact(4)
                .map(|c| {
                    let bytes = [
                        c.first().copied()?,
                        c.get(1).copied()?,
                        c.get(2).copied()?,
                        c.get(3).copied()?,
                    ];
                    char::from_u32(u32::from_be_bytes(bytes))
                })
                .collect()
        }
        _ => None,
    }
}

/// `#` followed by the hex of the value's DER encoding (RFC 4514 §2.4).
fn hex_value(value: &Any<'_>) -> String {
    let mut der = Vec::with_capacity(value.data.len() + 6);
    match value.header.raw_tag() {
        Some(raw) => der.extend_from_slice(raw),
        None => {
            let class = value.header.class() as u8;
            let constructed = if value.header.is_constructed() {
                0x20
            } else {
                0
            };
            // Tags from 31 on need the long form, which the parser keeps in
            // `raw_tag`; this branch only sees low tag numbers.
            let tag = u8::try_from(value.tag().0).unwrap_or(0x1f) & 0x1f;
            der.push((class << 6) | constructed | tag);
        }
    }
    let len = value.data.len();
    if len < 0x80 {
        der.push(u8::try_from(len).unwrap_or(0));
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        der.push(0x80 | u8::try_from(significant.len()).unwrap_or(0));
        der.extend_from_slice(significant);
    }
    der.extend_from_slice(value.data);
    let mut out = String::with_capacity(1 + der.len() * 2);
    out.push('#');
    for b in der {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Escapes a value per RFC 4514 §2.4; control characters are written as
/// `\XX` so the result is safe to log.
fn escape(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
}

/// The RFC 4514 string of a name, e.g. `CN=web,O=Example,C=DE` for a
/// certificate whose subject is `C=DE`, `O=Example`, `CN=web`.
pub(crate) fn rfc4514(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter_rdn().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let (ty, known) = type_name(attr);
            out.push_str(&ty);
            out.push('=');
            match decode_value(attr.attr_value()) {
                Some(v) if known => escape(&v, &mut out),
                _ => out.push_str(&hex_value(attr.attr_value())),
            }
        }
    }
    out
}

/// The attributes of a name as (short name or dotted OID, value), in
/// certificate order. Values are unescaped text, or `#`-hex when the value
/// is not a string type.
pub(crate) fn attributes(name: &X509Name<'_>) -> Vec<(String, String)> {
    name.iter_attributes()
        .map(|attr| {
            let (ty, _) = type_name(attr);
            let value =
                decode_value(attr.attr_value()).unwrap_or_else(|| hex_value(attr.attr_value()));
            (ty, value)
        })
        .collect()
}

#[cfg(test)]
mod tests;
