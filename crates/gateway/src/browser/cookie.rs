//! Cookies: reading one by name from `Cookie` headers, and building the
//! session and login-transaction cookies (`__Host-`, Secure, HttpOnly,
//! SameSite=Lax, Path=/).

use http::HeaderMap;

/// The value of cookie `name`, if exactly one is sent. Several cookies of
/// that name (an attacker planting a second one on a sibling domain cannot
/// with `__Host-`, but a confused client can) count as none.
pub(crate) fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut found = None;
    for h in headers.get_all(http::header::COOKIE) {
        let Ok(s) = h.to_str() else { continue };
        for pair in s.split(';') {
            let pair = pair.trim_matches(' ');
            if let Some((k, v)) = pair.split_once('=') {
                if k == name {
                    if found.is_some() {
                        return None;
                    }
                    found = Some(v);
                }
            }
        }
    }
    found
}

/// Removes the cookies `names` from the request's `Cookie` headers (the
/// gateway's own cookies are credentials for the gateway, not for
/// upstreams); drops a header left empty.
pub(crate) fn strip(headers: &mut HeaderMap, names: &[&str]) {
    let values: Vec<http::HeaderValue> = headers
        .get_all(http::header::COOKIE)
        .iter()
        .cloned()
        .collect();
    if values.is_empty() {
        return;
    }
    headers.remove(http::header::COOKIE);
    for v in values {
        let Ok(s) = v.to_str() else {
            // Not text: it cannot be one of ours; keep it as sent.
            headers.append(http::header::COOKIE, v);
            continue;
        };
        let kept: Vec<&str> = s
            .split(';')
            .map(|p| p.trim_matches(' '))
            .filter(|p| !p.is_empty())
            .filter(|p| {
                let name = p.split_once('=').map_or(*p, |(k, _)| k);
                !names.contains(&name)
            })
            .collect();
        if !kept.is_empty() {
            if let Ok(v) = http::HeaderValue::from_str(&kept.join("; ")) {
                headers.append(http::header::COOKIE, v);
            }
        }
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
    fn strip_removes_only_the_named_cookies() {
        let mut h = HeaderMap::new();
        h.append("cookie", "a=1; __Host-s=abc; b=2".parse().unwrap());
        h.append("cookie", "__Host-s=x".parse().unwrap());
        strip(&mut h, &["__Host-s"]);
        let all: Vec<_> = h
            .get_all("cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(all, vec!["a=1; b=2"]);
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
