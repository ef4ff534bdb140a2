//! Route selection by host, path prefix and method.
//!
//! Lookup walks the normalised path's segment-aligned prefixes from the
//! longest to `/` in a hash map, so its cost depends on the path depth,
//! not on the number of routes. Host-specific routes win over any-host
//! routes; a longer prefix wins over a shorter one; among routes with the
//! same host and prefix, one listing the method wins over one for any
//! method.
//!
//! The maps hash with FxHash rather than SipHash: their keys come from the
//! configuration only, and a lookup with a client's host or path cannot
//! lengthen a probe sequence that the stored keys did not already make.
//! SipHash cost about 700 instructions per request here.

use rustc_hash::FxHashMap as HashMap;

use portcullis_config::Route;

/// Index of a route in the configuration's `routes`.
pub(crate) type RouteId = usize;

#[derive(Debug, Default)]
pub(crate) struct RouteTable {
    /// (host or "" for any) -> prefix -> candidates.
    by_host: HashMap<String, HashMap<String, Vec<Candidate>>>,
}

#[derive(Debug)]
struct Candidate {
    id: RouteId,
    methods: Vec<http::Method>,
}

impl RouteTable {
    pub(crate) fn new(routes: &[Route]) -> Self {
        let mut t = Self::default();
        for (id, r) in routes.iter().enumerate() {
            let host = r.host.clone().unwrap_or_default();
            let list = t
                .by_host
                .entry(host)
                .or_default()
                .entry(r.path_prefix.clone())
                .or_default();
            list.push(Candidate {
                id,
                methods: r.methods.clone(),
            });
            // Routes naming methods are tried before any-method routes.
            list.sort_by_key(|c| c.methods.is_empty());
        }
        t
    }

    /// `path` must be normalised (starts with `/`).
    pub(crate) fn find(&self, host: &str, path: &str, method: &http::Method) -> Option<RouteId> {
        if let Some(m) = self.by_host.get(host) {
            if let Some(id) = Self::find_in(m, path, method) {
                return Some(id);
            }
        }
        self.by_host
            .get("")
            .and_then(|m| Self::find_in(m, path, method))
    }

    fn find_in(
        map: &HashMap<String, Vec<Candidate>>,
        path: &str,
        method: &http::Method,
    ) -> Option<RouteId> {
        let mut end = path.len();
        loop {
            let prefix = match path.get(..end) {
                Some("") | None => "/",
                Some(p) => p,
            };
            if let Some(list) = map.get(prefix) {
                if let Some(c) = list
                    .iter()
                    .find(|c| c.methods.is_empty() || c.methods.contains(method))
                {
                    return Some(c.id);
                }
            }
            if prefix == "/" {
                return None;
            }
            // Next shorter segment-aligned prefix.
            end = prefix.rfind('/').unwrap_or(0);
        }
    }
}

#[cfg(test)]
mod tests;
