//! PEM (RFC 7468) reading and writing, strict: only blocks and blank lines,
//! standard base64 with padding, matching labels.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use zeroize::Zeroizing;

/// Largest PEM text read: a P-256 or Ed25519 key is a few hundred bytes.
pub const MAX_PEM_BYTES: usize = 16 * 1024;

/// One decoded PEM block. The DER is zeroized on drop, as it may be a
/// private key.
pub(crate) struct Block {
    pub(crate) label: String,
    pub(crate) der: Zeroizing<Vec<u8>>,
}

/// Parses every block of `text`.
pub(crate) fn parse(text: &str) -> Result<Vec<Block>, &'static str> {
    if text.len() > MAX_PEM_BYTES {
        return Err("pem text too long");
    }
    let mut blocks = Vec::new();
    let mut open: Option<(&str, Zeroizing<String>)> = None;
    for line in text.lines() {
        let line = line.trim_end_matches([' ', '\t']);
        match open.take() {
            None => {
                if line.is_empty() {
                    continue;
                }
                let label = line
                    .strip_prefix("-----BEGIN ")
                    .and_then(|rest| rest.strip_suffix("-----"))
                    .ok_or("text outside a pem block")?;
                open = Some((label, Zeroizing::new(String::new())));
            }
            Some((label, mut body)) => {
                if let Some(end) = line
                    .strip_prefix("-----END ")
                    .and_then(|rest| rest.strip_suffix("-----"))
                {
                    if end != label {
                        return Err("pem end label does not match its begin label");
                    }
                    let der = STANDARD
                        .decode(body.as_bytes())
                        .map_err(|_| "pem body is not base64")?;
                    blocks.push(Block {
                        label: label.to_owned(),
                        der: Zeroizing::new(der),
                    });
                } else {
                    body.push_str(line);
                    open = Some((label, body));
                }
            }
        }
    }
    if open.is_some() {
        return Err("pem block has no end line");
    }
    Ok(blocks)
}

/// Parses `text` as exactly one block with `label`.
pub(crate) fn parse_one(text: &str, label: &str) -> Result<Zeroizing<Vec<u8>>, &'static str> {
    let mut blocks = parse(text)?.into_iter();
    match (blocks.next(), blocks.next()) {
        (Some(block), None) if block.label == label => Ok(block.der),
        (Some(_), None) => Err("unexpected pem label"),
        (None, _) => Err("no pem block"),
        (Some(_), Some(_)) => Err("more than one pem block"),
    }
}

/// Encodes DER as one PEM block with 64-column lines and a final newline.
pub fn encode(label: &str, der: &[u8]) -> Zeroizing<String> {
    let body = Zeroizing::new(STANDARD.encode(der));
    let mut out = Zeroizing::new(format!("-----BEGIN {label}-----\n"));
    let mut rest = body.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests;
