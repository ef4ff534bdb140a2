//! How certificate names are written: the RFC 4514 string form the
//! verifier renders subjects and issuers in, and the check that a name
//! written in a policy is in that form.

/// Short names for attribute types: the RFC 4514 §3 table plus the names
/// OpenSSL prints for other common subject attributes, by dotted OID.
pub const DN_SHORT_NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.6", "C"),
    ("2.5.4.9", "STREET"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("2.5.4.4", "SN"),
    ("2.5.4.5", "serialNumber"),
    ("2.5.4.12", "title"),
    ("2.5.4.17", "postalCode"),
    ("2.5.4.42", "GN"),
    ("2.5.4.46", "dnQualifier"),
    ("1.2.840.113549.1.9.1", "emailAddress"),
];

/// Whether `name` could be a name as the verifier renders it: attributes
/// `TYPE=value` separated by unescaped `,` (or `+` within an RDN), with
/// no space around the separators or the `=`, and each type a short name
/// of [`DN_SHORT_NAMES`] in its case or a dotted OID. `Err` says what is
/// off: names are compared as strings, so a name spelled otherwise
/// (`CN=alice, O=Example` as OpenSSL prints it, `cn=alice`) never matches.
pub fn check_rfc4514(name: &str) -> Result<(), String> {
    let mut attrs = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in name.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' | '+' => {
                attrs.push(name.get(start..i).unwrap_or(""));
                start = i + 1;
            }
            _ => {}
        }
    }
    attrs.push(name.get(start..).unwrap_or(""));
    for attr in attrs {
        let Some((ty, value)) = attr.split_once('=') else {
            return Err(format!("`{attr}` is not `TYPE=value`"));
        };
        if ty.starts_with(char::is_whitespace) || ty.ends_with(char::is_whitespace) {
            return Err(format!(
                "`{attr}` has a space around its type; names are written without spaces after `,` or around `=` (RFC 4514)"
            ));
        }
        if value.starts_with(' ') {
            return Err(format!("`{attr}` has a space after `=`"));
        }
        let oid = !ty.is_empty()
            && ty
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !oid && !DN_SHORT_NAMES.iter().any(|(_, short)| *short == ty) {
            let hint = DN_SHORT_NAMES
                .iter()
                .find(|(_, short)| short.eq_ignore_ascii_case(ty))
                .map(|(_, short)| format!("; did you mean `{short}`?"))
                .unwrap_or_default();
            return Err(format!(
                "`{ty}` is neither a known short name (CN, O, OU, C, L, ST, DC, ...) nor a dotted OID{hint}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_the_verifier_writes_them_pass() {
        for ok in [
            "CN=alice,O=Example",
            "CN=a\\, b,O=Example",
            "CN=web+UID=7,DC=example,DC=org",
            "2.5.4.97=#0c03616263,CN=x",
            "emailAddress=a@example.org",
        ] {
            assert_eq!(check_rfc4514(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn names_spelled_otherwise_are_refused_with_the_reason() {
        for (bad, why) in [
            ("CN=alice, O=Example", "space"),
            ("cn=alice,o=Example", "did you mean `CN`"),
            ("CN = alice", "space"),
            ("CN= alice", "space after"),
            ("alice", "not `TYPE=value`"),
            ("Common Name=alice", "neither a known short name"),
        ] {
            let e = check_rfc4514(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
