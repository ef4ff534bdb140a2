use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use proptest::prelude::*;

use super::*;

const ACCEPT_NONE: Verdict = Verdict::Accept(BodyFraming::None);
const ACCEPT_CHUNKED: Verdict = Verdict::Accept(BodyFraming::Chunked);
const TE_AND_CL: Verdict = Verdict::Refuse(FramingError::TransferEncodingAndContentLength);
const DUPLICATE_CL: Verdict = Verdict::Refuse(FramingError::MultipleContentLength);

fn scan_with(mut scanner: Http1FramingScanner, parts: &[&[u8]]) -> Vec<Verdict> {
    let mut out = Vec::new();
    for part in parts {
        scanner.feed(part, |v| out.push(v));
    }
    out
}

/// Verdicts for `stream` fed at once.
fn scan(stream: &[u8]) -> Vec<Verdict> {
    scan_with(Http1FramingScanner::new(), &[stream])
}

/// Verdicts for `stream` fed one byte at a time; asserts they equal the
/// verdicts for the stream fed at once.
fn scan_checked(stream: &[u8]) -> Vec<Verdict> {
    let whole = scan(stream);
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    let bytewise = scan_with(Http1FramingScanner::new(), &bytes);
    assert_eq!(bytewise, whole, "{:?}", String::from_utf8_lossy(stream));
    whole
}

fn length(n: u64) -> Verdict {
    Verdict::Accept(BodyFraming::Length(n))
}

fn post(fields: &str, body: &str) -> String {
    format!("POST /a HTTP/1.1\r\nHost: x\r\n{fields}\r\n{body}")
}

const NEXT: &str = "GET /next HTTP/1.1\r\nHost: x\r\n\r\n";

// ------------------------------------------------------------- framing

#[test]
fn request_without_body() {
    assert_eq!(
        scan_checked(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        [ACCEPT_NONE]
    );
    assert_eq!(scan_checked(b"GET / HTTP/1.1\r\n\r\n"), [ACCEPT_NONE]);
}

#[test]
fn content_length_body_is_skipped() {
    // The body looks like a request head; it is body.
    let body = "GET /smuggled HTTP/1.1\r\n\r\n";
    let stream = post(&format!("Content-Length: {}\r\n", body.len()), body) + NEXT;
    assert_eq!(
        scan_checked(stream.as_bytes()),
        [length(body.len() as u64), ACCEPT_NONE]
    );
}

#[test]
fn zero_content_length() {
    let stream = post("Content-Length: 0\r\n", "") + NEXT;
    assert_eq!(scan_checked(stream.as_bytes()), [length(0), ACCEPT_NONE]);
}

#[test]
fn content_length_is_decimal_with_leading_zeros_and_trimmed() {
    let stream = post("Content-Length: \t007 \r\n", "1234567") + NEXT;
    assert_eq!(scan_checked(stream.as_bytes()), [length(7), ACCEPT_NONE]);
    let stream = post("Content-Length: 18446744073709551615\r\n", "");
    assert_eq!(scan_checked(stream.as_bytes()), [length(u64::MAX)]);
}

#[test]
fn chunked_body_with_extensions_and_trailers_is_skipped() {
    let body = "5\r\nhello\r\nA;name=value;x\r\n0123456789\r\n3 \t;ext\r\nabc\r\n\
                0;last\r\nTrailer-One: 1\r\nTrailer-Two: GET / HTTP/1.1\r\n\r\n";
    let stream = post("Transfer-Encoding: chunked\r\n", body) + NEXT;
    assert_eq!(
        scan_checked(stream.as_bytes()),
        [ACCEPT_CHUNKED, ACCEPT_NONE]
    );
}

#[test]
fn chunk_data_is_not_read_as_framing() {
    // Data holding CRLFs and a fake last chunk.
    let body = "e\r\n0\r\n\r\nGET / x\r\n\r\n0\r\n\r\n";
    let stream = post("Transfer-Encoding: chunked\r\n", body) + NEXT;
    assert_eq!(
        scan_checked(stream.as_bytes()),
        [ACCEPT_CHUNKED, ACCEPT_NONE]
    );
}

#[test]
fn chunk_sizes_are_hex_in_either_case() {
    let data = "x".repeat(0xab);
    let stream = post(
        "Transfer-Encoding: chunked\r\n",
        &format!("aB\r\n{data}\r\n0\r\n\r\n"),
    ) + NEXT;
    assert_eq!(
        scan_checked(stream.as_bytes()),
        [ACCEPT_CHUNKED, ACCEPT_NONE]
    );
}

#[test]
fn transfer_encoding_goes_by_the_last_coding_of_the_last_line() {
    for te in [
        "chunked",
        "Chunked",
        "gzip, chunked",
        "gzip,chunked ",
        "gzip\r\nTransfer-Encoding: chunked",
    ] {
        let stream = post(&format!("Transfer-Encoding: {te}\r\n"), "0\r\n\r\n") + NEXT;
        assert_eq!(
            scan_checked(stream.as_bytes()),
            [ACCEPT_CHUNKED, ACCEPT_NONE],
            "{te:?}"
        );
    }
}

#[test]
fn transfer_encoding_not_ending_in_chunked_stops_the_scan() {
    for te in [
        "gzip",
        "chunked, gzip",
        "xchunked",
        "",
        "chunked\r\nTransfer-Encoding: gzip",
    ] {
        let stream = post(&format!("Transfer-Encoding: {te}\r\n"), "0\r\n\r\n") + NEXT;
        assert_eq!(
            scan_checked(stream.as_bytes()),
            [Verdict::Unparseable(NOT_CHUNKED)],
            "{te:?}"
        );
    }
}

// ------------------------------------------------------------ smuggling

#[test]
fn content_length_with_transfer_encoding_is_refused_and_read_as_chunked() {
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    for fields in [
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        "content-length: 5\r\ntransfer-encoding: chunked\r\n",
        "CONTENT-LENGTH: 5\r\nTRANSFER-ENCODING: CHUNKED\r\n",
        "Content-Length: 5\r\nTransfer-Encoding: gzip, chunked\r\n",
        // Whitespace before the colon (which hyper refuses) still counts.
        "Content-Length : 5\r\nTransfer-Encoding\t: chunked\r\n",
        // A `Content-Length` hyper would skip or refuse is still one.
        "Transfer-Encoding: chunked\r\nContent-Length: nope\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length:\r\n",
    ] {
        // Read as chunked (as hyper does): `smuggled` is the next request.
        let stream = post(fields, "0\r\n\r\n") + smuggled;
        assert_eq!(
            scan_checked(stream.as_bytes()),
            [TE_AND_CL, ACCEPT_NONE],
            "{fields:?}"
        );
    }
}

#[test]
fn content_length_with_transfer_encoding_not_ending_in_chunked() {
    let stream = post("Content-Length: 5\r\nTransfer-Encoding: gzip\r\n", "hello") + NEXT;
    assert_eq!(
        scan_checked(stream.as_bytes()),
        [TE_AND_CL, Verdict::Unparseable(NOT_CHUNKED)]
    );
}

#[test]
fn equal_duplicate_content_lengths_are_refused_and_the_body_skipped() {
    for fields in [
        "Content-Length: 5\r\nContent-Length: 5\r\n",
        "Content-Length: 5\r\nX: y\r\ncontent-length: 005\r\n",
        "Content-Length: 5, 5\r\n",
        "Content-Length: 5,5,5\r\n",
    ] {
        let stream = post(fields, "hello") + NEXT;
        assert_eq!(
            scan_checked(stream.as_bytes()),
            [DUPLICATE_CL, ACCEPT_NONE],
            "{fields:?}"
        );
    }
}

#[test]
fn differing_or_invalid_duplicate_content_lengths_stop_the_scan() {
    for (fields, reason) in [
        (
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            CONFLICTING_CONTENT_LENGTH,
        ),
        ("Content-Length: 5, 6\r\n", CONFLICTING_CONTENT_LENGTH),
        ("Content-Length: 5,\r\n", BAD_CONTENT_LENGTH),
        ("Content-Length: ,5\r\n", BAD_CONTENT_LENGTH),
        (
            "Content-Length: 5\r\nContent-Length: x\r\n",
            BAD_CONTENT_LENGTH,
        ),
    ] {
        let stream = post(fields, "hello") + NEXT;
        assert_eq!(
            scan_checked(stream.as_bytes()),
            [DUPLICATE_CL, Verdict::Unparseable(reason)],
            "{fields:?}"
        );
    }
}

#[test]
fn invalid_content_length_stops_the_scan() {
    for value in [
        "",
        "+5",
        "-5",
        "5 5",
        "0x5",
        "1e3",
        "18446744073709551616",
        "5\u{a0}",
    ] {
        let stream = post(&format!("Content-Length: {value}\r\n"), "hello") + NEXT;
        assert_eq!(
            scan_checked(stream.as_bytes()),
            [Verdict::Unparseable(BAD_CONTENT_LENGTH)],
            "{value:?}"
        );
    }
}

#[test]
fn framing_names_elsewhere_are_not_fields() {
    for fields in [
        // In a value.
        "X-Note: Content-Length: 5\r\n",
        "X-Note: transfer-encoding: chunked\r\n",
        // Other names that contain them.
        "X-Content-Length: 5\r\nContent-Length-X: 5\r\n",
        "Transfer-Encodings: chunked\r\n",
        // A line without a colon.
        "Content-Length 5\r\n",
        // Continued by obsolete line folding: part of `X`'s value.
        "X: y\r\n Content-Length: 5\r\n",
        "X: y\r\n\tTransfer-Encoding: chunked\r\n",
    ] {
        let stream = post(fields, "") + NEXT;
        assert_eq!(
            scan_checked(stream.as_bytes()),
            [ACCEPT_NONE, ACCEPT_NONE],
            "{fields:?}"
        );
    }
    // In the request line.
    let stream = "GET /Content-Length:5 HTTP/1.1\r\nX: Transfer-Encoding: chunked\r\n\r\n";
    assert_eq!(scan_checked(stream.as_bytes()), [ACCEPT_NONE]);
}

#[test]
fn folded_framing_field_stops_the_scan() {
    for fields in [
        "Content-Length: 5\r\n 6\r\n",
        "Transfer-Encoding: gzip,\r\n\tchunked\r\n",
    ] {
        let stream = post(fields, "hello") + NEXT;
        assert_eq!(
            scan_checked(stream.as_bytes()),
            [Verdict::Unparseable(FOLDED_FIELD)],
            "{fields:?}"
        );
    }
}

// ---------------------------------------------------------- stream shape

#[test]
fn bare_lf_line_endings() {
    let stream = "POST / HTTP/1.1\nContent-Length: 5\nTransfer-Encoding: chunked\n\n0\r\n\r\n\
                  GET / HTTP/1.1\nHost: x\r\n\n\
                  GET / HTTP/1.1\r\nHost: x\n\r\n\
                  POST / HTTP/1.1\nContent-Length: 2\n\nab";
    assert_eq!(
        scan_checked(stream.as_bytes()),
        [TE_AND_CL, ACCEPT_NONE, ACCEPT_NONE, length(2)]
    );
}

#[test]
fn empty_lines_between_requests_are_skipped() {
    let stream = format!("\r\n\n\r\n{NEXT}\r\n\r\n{NEXT}\n{NEXT}");
    assert_eq!(
        scan_checked(stream.as_bytes()),
        [ACCEPT_NONE, ACCEPT_NONE, ACCEPT_NONE]
    );
}

#[test]
fn pipelined_requests_give_verdicts_in_order() {
    let stream = [
        post("Content-Length: 3\r\n", "abc"),
        post("Transfer-Encoding: chunked\r\n", "1\r\na\r\n0\r\n\r\n"),
        post("Content-Length: 1\r\nContent-Length: 1\r\n", "a"),
        NEXT.to_owned(),
        post(
            "Transfer-Encoding: chunked\r\nContent-Length: 1\r\n",
            "0\r\n\r\n",
        ),
        NEXT.to_owned(),
    ]
    .concat();
    assert_eq!(
        scan_checked(stream.as_bytes()),
        [
            length(3),
            ACCEPT_CHUNKED,
            DUPLICATE_CL,
            ACCEPT_NONE,
            TE_AND_CL,
            ACCEPT_NONE
        ]
    );
}

#[test]
fn head_split_at_every_position() {
    let stream = post(
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "0\r\n\r\n",
    ) + NEXT;
    let bytes = stream.as_bytes();
    for cut in 0..=bytes.len() {
        let (a, b) = bytes.split_at(cut);
        assert_eq!(
            scan_with(Http1FramingScanner::new(), &[a, b]),
            [TE_AND_CL, ACCEPT_NONE],
            "cut at {cut}"
        );
    }
}

#[test]
fn verdict_comes_as_soon_as_the_head_ends() {
    let mut scanner = Http1FramingScanner::new();
    let mut out = Vec::new();
    scanner.feed(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r", |v| {
        out.push(v)
    });
    assert!(out.is_empty());
    scanner.feed(b"\n", |v| out.push(v));
    assert_eq!(out, [length(10)]);
    scanner.feed(b"0123456789", |v| out.push(v));
    assert_eq!(out, [length(10)]);
}

// ------------------------------------------------------------ malformed

#[test]
fn malformed_chunks_stop_the_scan() {
    for (body, reason) in [
        ("x\r\n", BAD_CHUNK_SIZE),
        (" 5\r\nhello\r\n0\r\n\r\n", BAD_CHUNK_SIZE),
        ("\r\n", BAD_CHUNK_SIZE),
        ("-1\r\n", BAD_CHUNK_SIZE),
        ("5x\r\n", BAD_CHUNK_LINE),
        ("5 x\r\n", BAD_CHUNK_LINE),
        ("5\nhello\r\n", BAD_CHUNK_LINE),
        ("5 \nhello\r\n", BAD_CHUNK_LINE),
        ("5;a\nhello\r\n", BAD_CHUNK_LINE),
        ("5\r\r\n", BAD_CHUNK_LINE),
        ("10000000000000000\r\n", CHUNK_SIZE_OVERFLOW),
        ("5\r\nhelloX\r\n", BAD_CHUNK_END),
        ("5\r\nhello\n0\r\n\r\n", BAD_CHUNK_END),
        ("5\r\nhello\rX", BAD_CHUNK_END),
        ("0\r\n\n", BAD_TRAILER),
        ("0\r\nX: y\n\r\n", BAD_TRAILER),
        ("0\r\nX: y\rZ", BAD_TRAILER),
        ("0\r\n\rX", BAD_TRAILER),
    ] {
        let stream = post("Transfer-Encoding: chunked\r\n", body) + NEXT + NEXT;
        assert_eq!(
            scan_checked(stream.as_bytes()),
            [ACCEPT_CHUNKED, Verdict::Unparseable(reason)],
            "{body:?}"
        );
    }
}

#[test]
fn largest_chunk_size_is_followed() {
    let stream = post(
        "Transfer-Encoding: chunked\r\n",
        "ffffffffffffffff\r\nsome data",
    );
    let mut scanner = Http1FramingScanner::new();
    let mut out = Vec::new();
    scanner.feed(stream.as_bytes(), |v| out.push(v));
    assert_eq!(out, [ACCEPT_CHUNKED]);
    assert_eq!(
        scanner.state,
        State::Chunked(Chunk::Data(u64::MAX - "some data".len() as u64))
    );
}

#[test]
fn a_stopped_scanner_reads_nothing_more() {
    let mut scanner = Http1FramingScanner::new();
    let mut out = Vec::new();
    scanner.feed(
        post("Transfer-Encoding: chunked\r\n", "zz\r\n").as_bytes(),
        |v| out.push(v),
    );
    assert!(scanner.is_stopped());
    scanner.feed(NEXT.as_bytes(), |v| out.push(v));
    assert_eq!(out, [ACCEPT_CHUNKED, Verdict::Unparseable(BAD_CHUNK_SIZE)]);
}

#[test]
fn head_over_the_limit_stops_the_scan() {
    let head = "GET / HTTP/1.1\r\nX: yyyy\r\n\r\n";
    let fits = Http1FramingScanner::with_max_head_bytes(head.len());
    assert_eq!(scan_with(fits, &[head.as_bytes()]), [ACCEPT_NONE]);
    let too_small = Http1FramingScanner::with_max_head_bytes(head.len() - 1);
    assert_eq!(
        scan_with(too_small, &[head.as_bytes()]),
        [Verdict::Unparseable(HEAD_TOO_LARGE)]
    );
    // Split, and never ending.
    let mut scanner = Http1FramingScanner::with_max_head_bytes(64);
    let mut out = Vec::new();
    for _ in 0..100 {
        scanner.feed(b"GET /aaaaaaaa", |v| out.push(v));
        assert!(scanner.partial_head.len() <= 64);
    }
    assert_eq!(out, [Verdict::Unparseable(HEAD_TOO_LARGE)]);
    assert!(scanner.is_stopped());
    assert_eq!(scanner.partial_head.capacity(), 0);
}

#[test]
fn empty_lines_count_towards_the_head_limit() {
    let scanner = Http1FramingScanner::with_max_head_bytes(32);
    assert_eq!(
        scan_with(scanner, &[&[b'\n'; 20], b"GET / HTTP/1.1\r\n\r\n"]),
        [Verdict::Unparseable(HEAD_TOO_LARGE)]
    );
    let mut scanner = Http1FramingScanner::with_max_head_bytes(32);
    let mut out = Vec::new();
    for _ in 0..100 {
        scanner.feed(b"\r\n", |v| out.push(v));
    }
    assert_eq!(out, [Verdict::Unparseable(HEAD_TOO_LARGE)]);
}

#[test]
fn the_limit_is_per_head() {
    let head = "GET / HTTP/1.1\r\nX: yyyy\r\n\r\n";
    let scanner = Http1FramingScanner::with_max_head_bytes(head.len());
    let stream = head.repeat(10);
    assert_eq!(scan_with(scanner, &[stream.as_bytes()]), [ACCEPT_NONE; 10]);
}

#[test]
fn a_large_partial_head_buffer_is_released() {
    let mut scanner = Http1FramingScanner::new();
    let big = format!(
        "GET / HTTP/1.1\r\nX: {}",
        "y".repeat(RETAINED_HEAD_CAPACITY * 2)
    );
    scanner.feed(big.as_bytes(), |_| {});
    assert!(scanner.partial_head.capacity() > RETAINED_HEAD_CAPACITY);
    let mut out = Vec::new();
    scanner.feed(b"\r\n\r\n", |v| out.push(v));
    assert_eq!(out, [ACCEPT_NONE]);
    assert!(scanner.partial_head.capacity() <= RETAINED_HEAD_CAPACITY);
}

#[test]
fn a_head_in_one_read_is_not_copied() {
    let mut scanner = Http1FramingScanner::new();
    scanner.feed(
        (post("Content-Length: 1\r\n", "a") + NEXT).as_bytes(),
        |_| {},
    );
    assert_eq!(scanner.partial_head.capacity(), 0);
}

// ---------------------------------------------------------------- queue

fn headers(fields: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in fields {
        h.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    h
}

#[test]
fn framing_agrees_with_the_parsed_headers() {
    let none = headers(&[("host", "x")]);
    let five = headers(&[("content-length", "5")]);
    let chunked = headers(&[("transfer-encoding", "chunked")]);
    assert!(BodyFraming::None.agrees_with(&none));
    assert!(BodyFraming::Length(5).agrees_with(&five));
    assert!(BodyFraming::Length(5).agrees_with(&headers(&[("content-length", "05")])));
    assert!(BodyFraming::Chunked.agrees_with(&chunked));

    assert!(!BodyFraming::None.agrees_with(&five));
    assert!(!BodyFraming::None.agrees_with(&chunked));
    assert!(!BodyFraming::Length(5).agrees_with(&none));
    assert!(!BodyFraming::Length(5).agrees_with(&chunked));
    assert!(!BodyFraming::Length(6).agrees_with(&five));
    assert!(!BodyFraming::Length(5).agrees_with(&headers(&[("content-length", "+5")])));
    assert!(!BodyFraming::Length(5).agrees_with(&headers(&[
        ("content-length", "5"),
        ("content-length", "5")
    ])));
    assert!(!BodyFraming::Length(5).agrees_with(&headers(&[
        ("content-length", "5"),
        ("transfer-encoding", "chunked")
    ])));
    assert!(!BodyFraming::Chunked.agrees_with(&none));
    assert!(!BodyFraming::Chunked.agrees_with(&five));
    assert!(!BodyFraming::Chunked.agrees_with(&headers(&[
        ("content-length", "5"),
        ("transfer-encoding", "chunked")
    ])));
}

#[test]
fn queue_gives_verdicts_in_order() {
    let mut q = VerdictQueue::new();
    q.push(ACCEPT_NONE);
    q.push(TE_AND_CL);
    q.push(length(5));
    q.push(DUPLICATE_CL);
    q.push(ACCEPT_CHUNKED);
    assert_eq!(q.len(), 5);
    let none = headers(&[]);
    assert_eq!(q.next_for(&none), Ok(()));
    assert_eq!(
        q.next_for(&headers(&[("transfer-encoding", "chunked")])),
        Err(FramingError::TransferEncodingAndContentLength)
    );
    // A refusal does not poison the queue: the stream is still followed.
    assert_eq!(q.next_for(&headers(&[("content-length", "5")])), Ok(()));
    assert_eq!(
        q.next_for(&headers(&[("content-length", "5")])),
        Err(FramingError::MultipleContentLength)
    );
    assert_eq!(
        q.next_for(&headers(&[("transfer-encoding", "chunked")])),
        Ok(())
    );
    assert!(q.is_empty());
}

#[test]
fn queue_fails_closed_without_a_verdict() {
    let mut q = VerdictQueue::new();
    let none = headers(&[]);
    assert_eq!(q.next_for(&none), Err(FramingError::NoVerdict));
    // Sticky: a late verdict cannot be paired any more.
    q.push(ACCEPT_NONE);
    assert_eq!(q.next_for(&none), Err(FramingError::NoVerdict));
}

#[test]
fn queue_fails_closed_on_a_mismatch() {
    let mut q = VerdictQueue::new();
    q.push(ACCEPT_NONE);
    q.push(ACCEPT_NONE);
    assert_eq!(
        q.next_for(&headers(&[("content-length", "5")])),
        Err(FramingError::VerdictMismatch)
    );
    assert_eq!(
        q.next_for(&headers(&[])),
        Err(FramingError::VerdictMismatch)
    );
    assert!(q.is_empty());
}

#[test]
fn unparseable_refuses_every_later_request() {
    let mut q = VerdictQueue::new();
    q.push(ACCEPT_NONE);
    q.push(Verdict::Unparseable(BAD_CHUNK_SIZE));
    let none = headers(&[]);
    let err = FramingError::Unparseable {
        reason: BAD_CHUNK_SIZE,
    };
    assert_eq!(q.next_for(&none), Ok(()));
    for _ in 0..3 {
        assert_eq!(q.next_for(&none), Err(err));
    }
    q.push(ACCEPT_NONE);
    assert_eq!(q.next_for(&none), Err(err));
}

#[test]
fn queue_is_bounded_and_refuses_past_the_bound() {
    let mut q = VerdictQueue::new();
    for _ in 0..MAX_PENDING_VERDICTS + 10 {
        q.push(ACCEPT_NONE);
    }
    assert_eq!(q.len(), MAX_PENDING_VERDICTS);
    let none = headers(&[]);
    for _ in 0..MAX_PENDING_VERDICTS {
        assert_eq!(q.next_for(&none), Ok(()));
    }
    assert_eq!(q.next_for(&none), Err(FramingError::TooManyPipelined));
    // Verdicts pushed after the overflow are not paired with later requests.
    q.push(ACCEPT_NONE);
    assert_eq!(q.next_for(&none), Err(FramingError::TooManyPipelined));
}

#[test]
fn stream_errors_have_codes_and_statuses() {
    let cases = [
        (
            FramingError::Unparseable {
                reason: BAD_CHUNK_SIZE,
            },
            "framing_unparseable",
        ),
        (FramingError::NoVerdict, "framing_unknown"),
        (FramingError::VerdictMismatch, "framing_mismatch"),
        (FramingError::TooManyPipelined, "framing_backlog"),
        (
            FramingError::MultipleContentLength,
            "duplicate_content_length",
        ),
        (FramingError::TransferEncodingAndContentLength, "te_and_cl"),
    ];
    for (e, code) in cases {
        assert_eq!(e.reason_code(), code);
        assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{e}");
    }
    assert_eq!(
        FramingError::Unparseable {
            reason: BAD_CHUNK_SIZE
        }
        .to_string(),
        "cannot follow the http/1 request stream: chunk size is not hexadecimal"
    );
    assert_eq!(
        FramingError::TooManyPipelined.to_string(),
        "more than 1024 pipelined requests ahead"
    );
}

// ----------------------------------------------------------- properties

/// Cuts `stream` at the given points (taken modulo its length).
fn split_at(stream: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    points.sort_unstable();
    let mut parts = Vec::new();
    let mut from = 0;
    for p in points {
        parts.push(stream[from..p].to_vec());
        from = p;
    }
    parts.push(stream[from..].to_vec());
    parts
}

/// Feeds `parts` and checks the bounds on the way.
fn scan_parts(parts: &[Vec<u8>], max_head: usize) -> Vec<Verdict> {
    let mut scanner = Http1FramingScanner::with_max_head_bytes(max_head);
    let mut out = Vec::new();
    for part in parts {
        scanner.feed(part, |v| out.push(v));
        assert!(scanner.partial_head.len() <= max_head);
    }
    // Nothing after a final verdict.
    if let Some(i) = out
        .iter()
        .position(|v| matches!(v, Verdict::Unparseable(_)))
    {
        assert_eq!(i, out.len() - 1, "{out:?}");
        assert!(scanner.is_stopped());
    }
    out
}

/// Byte strings built from pieces of HTTP/1 so that heads, framing
/// fields and chunks are common, with arbitrary bytes mixed in.
fn http_ish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"POST / HTTP/1.1\r\n".to_vec()),
        Just(b"GET / HTTP/1.1\n".to_vec()),
        Just(b"Content-Length: 3\r\n".to_vec()),
        Just(b"content-length:0\r\n".to_vec()),
        Just(b"Content-Length: 3, 3\r\n".to_vec()),
        Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
        Just(b"transfer-encoding : gzip, chunked\n".to_vec()),
        Just(b"X: y\r\n".to_vec()),
        Just(b" folded\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"3\r\nabc\r\n".to_vec()),
        Just(b"a;x=y\r\n0123456789\r\n".to_vec()),
        Just(b"0\r\n\r\n".to_vec()),
        Just(b"0\r\nT: 1\r\n\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn verdicts_do_not_depend_on_read_boundaries(
        stream in proptest::collection::vec(any::<u8>(), 0..2048),
        cuts in proptest::collection::vec(any::<usize>(), 0..24),
        max_head in 16usize..4096,
    ) {
        let whole = scan_parts(std::slice::from_ref(&stream), max_head);
        let split = scan_parts(&split_at(&stream, &cuts), max_head);
        prop_assert_eq!(split, whole);
    }

    #[test]
    fn verdicts_on_http_like_bytes_do_not_depend_on_read_boundaries(
        stream in http_ish(),
        cuts in proptest::collection::vec(any::<usize>(), 0..24),
        max_head in 16usize..512,
    ) {
        let whole = scan_parts(std::slice::from_ref(&stream), max_head);
        let split = scan_parts(&split_at(&stream, &cuts), max_head);
        let bytewise: Vec<Vec<u8>> = stream.chunks(1).map(<[u8]>::to_vec).collect();
        prop_assert_eq!(&split, &whole);
        prop_assert_eq!(scan_parts(&bytewise, max_head), whole);
    }
}

// ------------------------------------------------------- message boundaries

#[test]
fn between_messages_only_at_the_end_of_a_whole_message() {
    let mut s = Http1FramingScanner::new();
    assert!(s.is_between_messages(), "a new connection");
    let steps: &[(&[u8], bool)] = &[
        (b"GET / HTTP/1.1\r\nHo", false),
        (b"st: x\r\n\r\n", true),
        (b"\r\n", true),
        (b"POST /a HTTP/1.1\r\nContent-Length: 4\r\n\r\nab", false),
        (b"cd", true),
        (
            b"POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n",
            false,
        ),
        (b"0\r\n\r", false),
        (b"\n", true),
    ];
    for (bytes, between) in steps {
        s.feed(bytes, |_| {});
        assert_eq!(
            s.is_between_messages(),
            *between,
            "after {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    s.feed(b"POST /c HTTP/1.1\r\nContent-Length: x\r\n\r\n", |_| {});
    assert!(s.is_stopped());
    assert!(!s.is_between_messages(), "a lost stream is never idle");
}
