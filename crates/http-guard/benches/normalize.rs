//! Cost of the per-request hygiene steps on typical inputs.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderName, HeaderValue};
use portcullis_http_guard::{normalize_path, sanitize_request_headers, sanitize_response_headers};

/// A typical API path: already normal, so the common case.
const TYPICAL_PATH: &str = "/api/v1/projects/portcullis/repos/gateway/pulls/1234/files";
/// A path that exercises decoding, merging and dot-segment removal.
const MESSY_PATH: &str = "//api/v1/./projects/%70ortcullis/../portcullis/repos/gateway%7e/";

/// A browser-like request of 20 fields, three of which are removed.
fn request_headers() -> HeaderMap {
    let fields = [
        ("host", "app.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-GB,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("referer", "https://app.example.com/dashboard"),
        (
            "cookie",
            "_portcullis_session=0123456789abcdef0123456789abcdef; theme=dark",
        ),
        ("sec-fetch-dest", "document"),
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-site", "same-origin"),
        ("sec-fetch-user", "?1"),
        ("upgrade-insecure-requests", "1"),
        ("priority", "u=0, i"),
        ("cache-control", "no-cache"),
        ("pragma", "no-cache"),
        ("dnt", "1"),
        ("x-request-id", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("connection", "keep-alive"),
        ("keep-alive", "timeout=5"),
        ("x-forwarded-for", "203.0.113.7"),
    ];
    header_map(&fields)
}

fn header_map(fields: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in fields {
        h.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    h
}

fn bench_normalize(c: &mut Criterion) {
    c.bench_function("normalize_path/typical", |b| {
        b.iter(|| normalize_path(black_box(TYPICAL_PATH)))
    });
    c.bench_function("normalize_path/messy", |b| {
        b.iter(|| normalize_path(black_box(MESSY_PATH)))
    });
}

/// Sanitizes a fresh copy of `headers` per iteration (the copy is not
/// timed).
fn bench_sanitizer(
    c: &mut Criterion,
    name: &str,
    headers: HeaderMap,
    sanitize: fn(&mut HeaderMap) -> portcullis_http_guard::SanitizeReport,
) {
    c.bench_function(name, |b| {
        b.iter_batched_ref(
            || headers.clone(),
            |h| sanitize(black_box(h)),
            criterion::BatchSize::SmallInput,
        )
    });
}

fn bench_sanitize(c: &mut Criterion) {
    bench_sanitizer(
        c,
        "sanitize_request_headers/20_fields",
        request_headers(),
        sanitize_request_headers,
    );
}

/// The response head of a small nginx answer, `Connection` included.
fn response_headers() -> HeaderMap {
    let fields = [
        ("server", "nginx/1.22.1"),
        ("date", "Sat, 05 Dec 2026 13:22:36 GMT"),
        ("content-type", "text/plain"),
        ("content-length", "3"),
        ("connection", "keep-alive"),
    ];
    header_map(&fields)
}

fn bench_sanitize_response(c: &mut Criterion) {
    bench_sanitizer(
        c,
        "sanitize_response_headers/nginx_5_fields",
        response_headers(),
        sanitize_response_headers,
    );
}

criterion_group!(
    benches,
    bench_normalize,
    bench_sanitize,
    bench_sanitize_response
);
criterion_main!(benches);
