//! Cookies: reading one by name from `Cookie` headers, and building the
//! session and login-transaction cookies (`__Host-`, Secure, HttpOnly,
//! SameSite=Lax, Path=/).

use http::{HeaderMap, HeaderValue};

/// The cookie pairs of every `Cookie` header, on bytes: a value may hold
/// bytes that are not text (obs-text), and a header the gateway could not
/// read as text must not hide its own cookies from it.
fn pairs(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|h| h.as_bytes().split(|b| *b == b';'))
        .map(|p| p.trim_ascii())
        .filter(|p| !p.is_empty())
}

/// A pair's name: up to the first `=` (the whole pair without one).
fn name_of(pair: &[u8]) -> &[u8] {
    pair.split(|b| *b == b'=').next().unwrap_or(pair)
}

/// The value of cookie `name`, if exactly one is sent. Several cookies of
/// that name (an attacker planting a second one on a sibling domain cannot
/// with `__Host-`, but a confused client can) count as none. A value that
/// is not text is returned as `""`: the gateway's own values are ASCII, so
/// the caller sees a malformed cookie of its own.
pub(crate) fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut found = None;
    for pair in pairs(headers) {
        let Some(eq) = pair.iter().position(|b| *b == b'=') else {
            continue;
        };
        let (k, v) = (pair.get(..eq)?, pair.get(eq + 1..)?);
        if k == name.as_bytes() {
            if found.is_some() {
                return None;
            }
            found = Some(std::str::from_utf8(v).unwrap_or(""));
        }
    }
    found
}

/// Rewrites the request's cookies for the upstream: the cookies `names`
/// removed (the gateway's own cookies are credentials for the gateway,
/// not for upstreams) and every `Cookie` field joined into one with
/// `"; "`, as an HTTP/2 request's split fields must be for HTTP/1.1
/// (RFC 9113 §8.2.3) and as RFC 6265 wants of any request. Does nothing
/// to a request with one `Cookie` field and no names to remove.
pub(crate) fn rewrite(headers: &mut HeaderMap, names: &[&str]) {
    let fields = headers.get_all(http::header::COOKIE).iter().count();
    if fields == 0 || (fields == 1 && names.is_empty()) {
        return;
    }
    let mut joined: Vec<u8> = Vec::new();
    for pair in pairs(headers) {
        if names.iter().any(|n| name_of(pair) == n.as_bytes()) {
            continue;
        }
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(pair);
    }
    headers.remove(http::header::COOKIE);
    // The pairs come from valid field values, so this cannot fail; if it
    // did, no cookie is passed on rather than an unfiltered one.
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        if !joined.is_empty() {
            headers.insert(http::header::COOKIE, v);
        }
    }
}

/// Removes from an upstream's response every `Set-Cookie` that sets one
/// of the cookies `names`: an upstream behind one route must not plant,
/// replace or clear the gateway's session or login cookie, which speak
/// for the whole origin.
pub(crate) fn strip_set_cookies(headers: &mut HeaderMap, names: &[&str]) {
    let set_cookie = http::header::SET_COOKIE;
    let sets_ours = |v: &HeaderValue| {
        let first = v.as_bytes().split(|b| *b == b';').next().unwrap_or(&[]);
        let name = name_of(first).trim_ascii();
        names
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
    };
    if !headers.get_all(&set_cookie).iter().any(sets_ours) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(&set_cookie)
        .iter()
        .filter(|v| !sets_ours(v))
        .cloned()
        .collect();
    headers.remove(&set_cookie);
    for v in kept {
        headers.append(&set_cookie, v);
    }
}

/// A `Set-Cookie` value for a host-only, secure, script-inaccessible
/// cookie. `max_age` `None` = a browser-session cookie; `Some(0)` deletes.
pub(crate) fn set(name: &str, value: &str, max_age: Option<u64>) -> String {
    let mut s = format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        s.push_str(&format!("; Max-Age={age}"));
    }
    s
}

/// Deletes cookie `name`.
pub(crate) fn clear(name: &str) -> String {
    set(name, "", Some(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cookie_by_name() {
        let mut h = HeaderMap::new();
        h.append("cookie", "a=1; __Host-s=abc; b=2".parse().unwrap());
        assert_eq!(get(&h, "__Host-s"), Some("abc"));
        assert_eq!(get(&h, "c"), None);
        h.append("cookie", "__Host-s=def".parse().unwrap());
        assert_eq!(
            get(&h, "__Host-s"),
            None,
            "two cookies of one name count as none"
        );
    }

    #[test]
    fn rewrite_removes_only_the_named_cookies_and_joins_the_fields() {
        let mut h = HeaderMap::new();
        h.append("cookie", "a=1; __Host-s=abc; b=2".parse().unwrap());
        h.append("cookie", "__Host-s=x".parse().unwrap());
        h.append("cookie", "c=3".parse().unwrap());
        rewrite(&mut h, &["__Host-s"]);
        let all: Vec<_> = h.get_all("cookie").iter().collect();
        assert_eq!(all, ["a=1; b=2; c=3"]);
        // Only the gateway's cookies: no field is left.
        let mut h = HeaderMap::new();
        h.append("cookie", "__Host-s=abc".parse().unwrap());
        rewrite(&mut h, &["__Host-s"]);
        assert!(h.get("cookie").is_none());
        // Nothing to remove: split fields are still joined.
        let mut h = HeaderMap::new();
        h.append("cookie", "a=1".parse().unwrap());
        h.append("cookie", "b=2".parse().unwrap());
        rewrite(&mut h, &[]);
        let all: Vec<_> = h.get_all("cookie").iter().collect();
        assert_eq!(all, ["a=1; b=2"]);
    }

    #[test]
    fn bytes_that_are_not_text_hide_no_cookie() {
        let mut h = HeaderMap::new();
        h.append(
            "cookie",
            HeaderValue::from_bytes(b"pref=caf\xc3\xa9; __Host-s=abc; b=2").unwrap(),
        );
        assert_eq!(get(&h, "__Host-s"), Some("abc"));
        rewrite(&mut h, &["__Host-s"]);
        let all: Vec<_> = h.get_all("cookie").iter().collect();
        assert_eq!(all, [&b"pref=caf\xc3\xa9; b=2"[..]]);
        // A cookie of ours whose value is not text reads as malformed.
        let mut h = HeaderMap::new();
        h.append("cookie", HeaderValue::from_bytes(b"__Host-s=\xff").unwrap());
        assert_eq!(get(&h, "__Host-s"), Some(""));
    }

    #[test]
    fn set_cookies_for_the_gateway_names_are_removed_from_responses() {
        let mut h = HeaderMap::new();
        h.append(
            "set-cookie",
            "__Host-s=evil; Path=/; Secure".parse().unwrap(),
        );
        h.append("set-cookie", "app=1; Path=/".parse().unwrap());
        h.append("set-cookie", " __host-L=x".parse().unwrap());
        h.append("set-cookie", "__Host-session=kept".parse().unwrap());
        strip_set_cookies(&mut h, &["__Host-s", "__Host-L"]);
        let all: Vec<_> = h.get_all("set-cookie").iter().collect();
        assert_eq!(all, ["app=1; Path=/", "__Host-session=kept"]);
    }

    #[test]
    fn set_cookie_attributes() {
        let c = set("__Host-s", "v", Some(60));
        assert_eq!(
            c,
            "__Host-s=v; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=60"
        );
        assert!(clear("__Host-s").ends_with("Max-Age=0"));
    }
}
