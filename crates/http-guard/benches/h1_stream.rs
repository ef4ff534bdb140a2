//! Cost of following an HTTP/1 connection's byte stream for its framing,
//! per read, as the gateway's listener feeds it.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use portcullis_http_guard::Http1FramingScanner;

/// A typical API request head of about 500 bytes, no body.
const GET: &[u8] = b"GET /api/v1/projects/portcullis/repos/gateway/pulls/1234/files HTTP/1.1\r\n\
Host: app.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-GB,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Cookie: _portcullis_session=0123456789abcdef0123456789abcdef; theme=dark\r\n\
X-Request-Id: 4bf92f3577b34da6a3ce929d0e0e4736\r\n\
Connection: keep-alive\r\n\r\n";

fn post_with_length(body: usize) -> Vec<u8> {
    let mut out = format!(
        "POST /api/upload HTTP/1.1\r\nHost: app.example.com\r\nContent-Length: {body}\r\n\r\n"
    )
    .into_bytes();
    out.resize(out.len() + body, b'x');
    out
}

fn post_chunked(chunks: usize, size: usize) -> Vec<u8> {
    let mut out =
        b"POST /api/upload HTTP/1.1\r\nHost: app.example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for _ in 0..chunks {
        out.extend(format!("{size:x}\r\n").as_bytes());
        out.resize(out.len() + size, b'x');
        out.extend(b"\r\n");
    }
    out.extend(b"0\r\n\r\n");
    out
}

/// Feeds `stream` in reads of `read` bytes to a fresh scanner.
fn feed(stream: &[u8], read: usize) -> usize {
    let mut scanner = Http1FramingScanner::new();
    let mut verdicts = 0;
    for part in stream.chunks(read) {
        scanner.feed(black_box(part), |_| verdicts += 1);
    }
    verdicts
}

fn bench_scanner(c: &mut Criterion) {
    let mut g = c.benchmark_group("h1_stream");
    g.throughput(Throughput::Bytes(GET.len() as u64));
    g.bench_function("get_head_one_read", |b| b.iter(|| feed(GET, 16 * 1024)));
    g.bench_function("get_head_split_in_64_byte_reads", |b| {
        b.iter(|| feed(GET, 64))
    });

    let pipelined = GET.repeat(16);
    g.throughput(Throughput::Bytes(pipelined.len() as u64));
    g.bench_function("16_pipelined_gets_one_read", |b| {
        b.iter(|| feed(&pipelined, 16 * 1024))
    });

    let upload = post_with_length(1 << 20);
    g.throughput(Throughput::Bytes(upload.len() as u64));
    g.bench_function("1_mib_content_length_body_16k_reads", |b| {
        b.iter(|| feed(&upload, 16 * 1024))
    });

    let chunked = post_chunked(256, 4096);
    g.throughput(Throughput::Bytes(chunked.len() as u64));
    g.bench_function("1_mib_chunked_body_16k_reads", |b| {
        b.iter(|| feed(&chunked, 16 * 1024))
    });
    g.finish();
}

criterion_group!(benches, bench_scanner);
criterion_main!(benches);
