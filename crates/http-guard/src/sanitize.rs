//! Header sanitation before forwarding: hop-by-hop headers, the gateway's
//! own namespace and identity headers a client could spoof.
//!
//! Names are compared ASCII case-insensitively with `_` treated as `-`:
//! CGI-style upstreams (PHP, WSGI, Rack) map both `X-Forwarded-User` and
//! `X_Forwarded_User` to `HTTP_X_FORWARDED_USER`, so either spelling must
//! go.

use std::borrow::Cow;

use http::header::CONNECTION;
use http::{HeaderMap, HeaderName};

/// Defines a list of canonical header names (lowercase, `-` not `_`) as a
/// public constant and, from the same literals, a function telling whether
/// a canonical name is one of them: a `match` on string literals, which
/// compiles to a dispatch on the length and one comparison, instead of a
/// loop over the list.
macro_rules! header_names {
    ($(#[$doc:meta])* pub const $list:ident; fn $is:ident; [$($name:literal),* $(,)?]) => {
        $(#[$doc])*
        pub const $list: [&str; [$($name),*].len()] = [$($name),*];

        #[doc = concat!("Whether `name` (canonical) is in [`", stringify!($list), "`].")]
        fn $is(name: &str) -> bool {
            matches!(name, $($name)|*)
        }
    };
}

header_names! {
/// Hop-by-hop headers (RFC 9110 §7.6.1, plus the legacy `keep-alive` and
/// `proxy-connection`), removed from requests and responses.
///
/// `te` is removed even when it is `trailers` (gRPC over HTTP/2): it is a
/// statement about this hop only; the gateway says `te: trailers` itself
/// to an HTTP/2 upstream when the client said it.
pub const HOP_BY_HOP_HEADERS; fn is_hop_by_hop; [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
]}

/// Prefix of the headers the gateway sets for the upstream (identity,
/// request id, ...). Clients may never send them; the bare name
/// `x-portcullis` is covered too.
pub const GATEWAY_HEADER_PREFIX: &str = "x-portcullis-";

header_names! {
/// Identity and provenance headers that upstreams, their frameworks or
/// other access proxies trust, and that a client could forge: the
/// authenticated user, client certificate, client address, original
/// scheme/host/URI and method overrides (the policy judged the method it
/// saw).
pub const IDENTITY_HEADERS; fn is_identity_name; [
    // user identity set by oauth2-proxy, Pomerium, Apache, IIS and others
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "remote-user",
    "x-user",
    "x-email",
    "x-authenticated-user",
    "x-authenticated-userid",
    "x-spiffe-id",
    // ... and by Kong's OIDC plugins and similar
    "x-auth-user",
    "x-userinfo",
    "x-id-token",
    "x-access-token",
    // client certificate (nginx, Apache, Envoy and ASP.NET Core
    // conventions; more in the prefixes)
    "x-forwarded-client-cert",
    "x-client-verify",
    "x-client-dn",
    "x-client-s-dn",
    "x-client-i-dn",
    "x-arr-clientcert",
    "x-arr-ssl",
    // client address
    "x-real-ip",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-by",
    "x-client-ip",
    "x-cluster-client-ip",
    "true-client-ip",
    "client-ip",
    "cf-connecting-ip",
    "cf-connecting-ipv6",
    "fastly-client-ip",
    "x-proxyuser-ip",
    // original scheme, host, port, prefix
    "x-forwarded-proto",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-forwarded-prefix",
    "x-host",
    "x-http-host-override",
    // original URI and method (`x-original-*`: in the prefixes)
    "x-rewrite-url",
    "x-forwarded-uri",
    "x-forwarded-method",
    // method overrides: the upstream would run a method the policy never saw
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    // set by Envoy's ext_authz / jwt_authn setups for the upstream
    "x-jwt-payload",
]}

/// Name prefixes of identity headers, compared like [`IDENTITY_HEADERS`].
///
/// `x-client-cert` is a prefix on purpose: it covers the bare header and
/// the `x-client-cert-*` family (`-chain`, `-dn`, `-san`) alike. Whole
/// families a proxy in front of an application sets: `x-remote-*`
/// (`-user`, `-group`, `-extra-*`: Kubernetes' request-header
/// authentication), `x-webauth-*` (Grafana's auth proxy), `x-ssl-*` and
/// `ssl-client-*` (the client certificate, its verification result and
/// DNs in nginx and Apache setups), `x-original-*` (host, URI, method,
/// address before a proxy), `x-envoy-*` (Envoy's internal headers).
pub const IDENTITY_HEADER_PREFIXES: [&str; 16] = [
    "x-auth-request-",
    "x-client-cert",
    "x-ssl-",
    "ssl-client-",
    "x-remote-",
    "x-webauth-",
    "x-original-",
    "x-envoy-",
    "x-pomerium-",
    "x-goog-authenticated-user-",
    "x-goog-iap-",
    "x-amzn-oidc-",
    "x-ms-client-principal",
    "cf-access-",
    "x-consumer-",
    "x-credential-",
];

header_names! {
/// Headers never removed because a `Connection` header names them: the
/// client may not change the message's framing or routing that way
/// (RFC 9110 §7.6.1 forbids such options). Hop-by-hop headers are still
/// removed by their own rule.
pub const CONNECTION_OPTION_EXEMPT; fn is_connection_option_exempt; ["content-length", "host"]}

/// Why a header was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalReason {
    /// Named in a `Connection` header value.
    ConnectionOption,
    /// A standard hop-by-hop header.
    HopByHop,
    /// In the gateway's `x-portcullis-` namespace.
    GatewayNamespace,
    /// A spoofable identity or provenance header.
    Identity,
    /// A field a trailer section may not carry.
    NotAllowedInTrailers,
}

impl RemovalReason {
    /// A stable label for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ConnectionOption => "connection_option",
            Self::HopByHop => "hop_by_hop",
            Self::GatewayNamespace => "gateway_namespace",
            Self::Identity => "identity",
            Self::NotAllowedInTrailers => "not_allowed_in_trailers",
        }
    }
}

/// What a sanitize call removed: header names only, never values, so it is
/// safe to log at debug level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SanitizeReport {
    removed: Vec<(HeaderName, RemovalReason)>,
    ignored_connection_options: Vec<&'static str>,
}

impl SanitizeReport {
    /// Each removed header name once (all its values were removed), with
    /// the first rule that matched, in the order of the rules.
    pub fn removed(&self) -> &[(HeaderName, RemovalReason)] {
        &self.removed
    }

    /// Whether `name` (lowercase) was removed.
    pub fn was_removed(&self, name: &str) -> bool {
        self.removed.iter().any(|(n, _)| n.as_str() == name)
    }

    /// `Connection` options naming a header in
    /// [`CONNECTION_OPTION_EXEMPT`] that were present and kept.
    pub fn ignored_connection_options(&self) -> &[&'static str] {
        &self.ignored_connection_options
    }

    /// Whether nothing was removed.
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty()
    }
}

/// Removes, in this order of precedence:
/// 1. every header named in any `Connection` header value (the client's
///    hop-by-hop list), except [`CONNECTION_OPTION_EXEMPT`];
/// 2. [`HOP_BY_HOP_HEADERS`];
/// 3. the gateway namespace ([`GATEWAY_HEADER_PREFIX`]);
/// 4. spoofable identity headers ([`IDENTITY_HEADERS`],
///    [`IDENTITY_HEADER_PREFIXES`]).
///
/// Call it on the client's headers *before* the gateway adds its own
/// `x-portcullis-*` and forwarding headers, and add those after: a client
/// can then neither forge them nor name them in `Connection` to have them
/// removed. Read what this hop consumes (the client's `Authorization` or
/// cookies for authentication) before calling: `Connection: authorization`
/// removes `Authorization`, as RFC 9110 §7.6.1 requires of a proxy.
pub fn sanitize_request_headers(headers: &mut HeaderMap) -> SanitizeReport {
    sanitize(headers, Section::RequestHeaders)
}

/// Removes from an upstream response, before it is sent to the client,
/// rules 1 to 3 of [`sanitize_request_headers`]: the hop-by-hop headers
/// and the gateway namespace, which only the gateway writes in either
/// direction (it adds its own `x-portcullis-request-id` after).
pub fn sanitize_response_headers(headers: &mut HeaderMap) -> SanitizeReport {
    sanitize(headers, Section::ResponseHeaders)
}

header_names! {
/// Fields a trailer section may not carry (RFC 9110 §6.5.1): framing,
/// routing, authentication, request modifiers, response control and
/// content metadata. A recipient that merged them into the header
/// section would act on fields nothing judged.
pub const TRAILER_FORBIDDEN_FIELDS; fn is_trailer_forbidden; [
    "authorization",
    "cache-control",
    "content-encoding",
    "content-length",
    "content-range",
    "content-type",
    "cookie",
    "expect",
    "host",
    "location",
    "max-forwards",
    "range",
    "set-cookie",
    "www-authenticate",
]}

/// Cleans a trailer section (the fields after a chunked body, or the
/// trailing HEADERS of an HTTP/2 stream) before it is passed on. A
/// request's trailers lose what [`sanitize_request_headers`] removes and
/// a response's what [`sanitize_response_headers`] removes; both lose
/// [`TRAILER_FORBIDDEN_FIELDS`]. Every field a client can put in its
/// headers it can put in its trailers, and HTTP/2 upstreams receive
/// trailers as sent.
pub fn sanitize_trailers(trailers: &mut HeaderMap, request: bool) -> SanitizeReport {
    let section = if request {
        Section::RequestTrailers
    } else {
        Section::ResponseTrailers
    };
    sanitize(trailers, section)
}

/// Which part of which message a field section is: what is removed from
/// it depends on both.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    RequestHeaders,
    ResponseHeaders,
    RequestTrailers,
    ResponseTrailers,
}

impl Section {
    /// From the client: spoofable identity headers go too.
    fn is_from_the_client(self) -> bool {
        matches!(self, Self::RequestHeaders | Self::RequestTrailers)
    }

    fn is_trailers(self) -> bool {
        matches!(self, Self::RequestTrailers | Self::ResponseTrailers)
    }
}

/// Whether a client may not send `name`: it is in the gateway namespace or
/// a spoofable identity header. Case-insensitive, `_` counts as `-`.
pub fn is_protected_header(name: &str) -> bool {
    let name = canonical(name);
    is_gateway_header(&name) || is_identity_header(&name)
}

fn sanitize(headers: &mut HeaderMap, section: Section) -> SanitizeReport {
    let options = connection_options(headers);
    let mut report = SanitizeReport::default();
    for exempt in CONNECTION_OPTION_EXEMPT {
        // The cheap comparison first: most messages name no option, and
        // a lookup by `&str` parses the name.
        if options.iter().any(|o| canon_eq(o, exempt.as_bytes())) && headers.contains_key(exempt) {
            report.ignored_connection_options.push(exempt);
        }
    }
    for name in headers.keys() {
        let n = canonical(name.as_str());
        let reason = if options.iter().any(|o| canon_eq(o, n.as_bytes()))
            && !is_connection_option_exempt(&n)
        {
            RemovalReason::ConnectionOption
        } else if is_hop_by_hop(&n) {
            RemovalReason::HopByHop
        } else if is_gateway_header(&n) {
            RemovalReason::GatewayNamespace
        } else if section.is_from_the_client() && is_identity_header(&n) {
            RemovalReason::Identity
        } else if section.is_trailers() && is_trailer_forbidden(name.as_str()) {
            RemovalReason::NotAllowedInTrailers
        } else {
            continue;
        };
        report.removed.push((name.clone(), reason));
    }
    for (name, _) in &report.removed {
        headers.remove(name);
    }
    report
}

/// The options (tokens) of every `Connection` header value, trimmed.
fn connection_options(headers: &HeaderMap) -> Vec<&[u8]> {
    headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
        .collect()
}

/// `name` as the lists spell it: lowercase, `_` as `-`. Header names in a
/// [`HeaderMap`] are lowercase already, so this copies only a name with an
/// underscore (or, from [`is_protected_header`], an uppercase letter).
pub fn canonical(name: &str) -> Cow<'_, str> {
    if name.bytes().any(|b| b == b'_' || b.is_ascii_uppercase()) {
        Cow::Owned(name.bytes().map(|b| char::from(canon(b))).collect())
    } else {
        Cow::Borrowed(name)
    }
}

/// Whether a canonical `name` is in the gateway namespace.
fn is_gateway_header(name: &str) -> bool {
    name.starts_with(GATEWAY_HEADER_PREFIX) || Some(name) == GATEWAY_HEADER_PREFIX.strip_suffix('-')
}

/// Whether a canonical `name` is a spoofable identity header.
fn is_identity_header(name: &str) -> bool {
    is_identity_name(name)
        || (name
            .bytes()
            .next()
            .is_some_and(|b| PREFIX_FIRST_BYTES.contains(b))
            && IDENTITY_HEADER_PREFIXES.iter().any(|p| name.starts_with(p)))
}

/// The first bytes of [`IDENTITY_HEADER_PREFIXES`]: a name starting with
/// any other byte needs no prefix comparison.
const PREFIX_FIRST_BYTES: ByteSet = ByteSet::of_first_bytes(&IDENTITY_HEADER_PREFIXES);

/// A set of ASCII bytes, built at compile time.
struct ByteSet(u128);

impl ByteSet {
    const fn of_first_bytes(words: &[&str]) -> Self {
        let mut set = 0u128;
        let mut rest = words;
        while let [word, tail @ ..] = rest {
            if let [first, ..] = word.as_bytes() {
                // A header name is ASCII: `first` < 128.
                set |= 1 << *first;
            }
            rest = tail;
        }
        Self(set)
    }

    fn contains(&self, b: u8) -> bool {
        1u128
            .checked_shl(u32::from(b))
            .is_some_and(|bit| self.0 & bit != 0)
    }
}

/// The byte a name is compared by: lowercase, `_` as `-`.
fn canon(b: u8) -> u8 {
    if b == b'_' {
        b'-'
    } else {
        b.to_ascii_lowercase()
    }
}

/// Compares a `Connection` option (any case, `_` or `-`) with a name.
fn canon_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| canon(*x) == canon(*y))
}

#[cfg(test)]
mod tests;
