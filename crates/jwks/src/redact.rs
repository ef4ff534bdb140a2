//! URIs as they may appear in logs and errors.

use std::fmt;

use http::Uri;

/// Shows a URI without credentials or query: `scheme://authority/path`,
/// with `?[redacted]` when a query was present (it may carry a secret).
pub(crate) struct Redacted<'a>(pub(crate) &'a Uri);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let uri = self.0;
        if let Some(scheme) = uri.scheme_str() {
            write!(f, "{scheme}://")?;
        }
        if let Some(authority) = uri.authority() {
            // Userinfo is refused at construction; show the host only anyway.
            let host_port = authority
                .as_str()
                .rsplit_once('@')
                .map_or(authority.as_str(), |(_, h)| h);
            f.write_str(host_port)?;
        }
        f.write_str(uri.path())?;
        if uri.query().is_some() {
            f.write_str("?[redacted]")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}
