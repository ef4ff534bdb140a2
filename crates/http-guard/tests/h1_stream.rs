//! The HTTP/1 framing scanner against generated request streams: its
//! verdicts match what the streams were built to be, however the stream is
//! split, and it finds the message boundaries hyper's server finds, so
//! each verdict lands on the request hyper parsed from that head.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions (clippy.toml allows these in tests)"
)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use portcullis_http_guard::{
    BodyFraming, FramingError, Http1FramingScanner, Verdict, VerdictQueue,
};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How one generated request frames its body.
#[derive(Debug, Clone)]
enum Shape {
    NoBody,
    Length(Vec<u8>),
    /// The same `Content-Length` in `copies` field lines, or in one list
    /// value if `list`.
    DuplicateLength {
        body: Vec<u8>,
        copies: usize,
        list: bool,
    },
    Chunked(Chunks),
    /// `Transfer-Encoding: chunked` and a `Content-Length` of `length`.
    ChunkedAndLength {
        chunks: Chunks,
        length: u64,
        length_first: bool,
    },
}

#[derive(Debug, Clone)]
struct Chunks {
    data: Vec<Vec<u8>>,
    extensions: bool,
    upper_hex: bool,
    trailers: Vec<String>,
    coding: &'static str,
}

#[derive(Debug, Clone)]
struct Message {
    empty_lines: Vec<&'static str>,
    lf_only: bool,
    upper_names: bool,
    filler: Vec<(String, String)>,
    shape: Shape,
}

impl Message {
    fn bytes(&self, index: usize) -> Vec<u8> {
        let eol = if self.lf_only { "\n" } else { "\r\n" };
        let name = |n: &str| {
            if self.upper_names {
                n.to_ascii_uppercase()
            } else {
                n.to_owned()
            }
        };
        let mut fields: Vec<(String, String)> = self.filler.clone();
        let cl = name("Content-Length");
        let te = name("Transfer-Encoding");
        let body = match &self.shape {
            Shape::NoBody => Vec::new(),
            Shape::Length(body) => {
                fields.push((cl, body.len().to_string()));
                body.clone()
            }
            Shape::DuplicateLength { body, copies, list } => {
                let n = body.len().to_string();
                if *list {
                    fields.push((cl, vec![n; *copies].join(", ")));
                } else {
                    for i in 0..*copies {
                        // Equal values, spelt differently.
                        fields.push((cl.clone(), format!("{}{n}", "0".repeat(i))));
                    }
                }
                body.clone()
            }
            Shape::Chunked(chunks) => {
                fields.push((te, chunks.coding.to_owned()));
                chunks.bytes()
            }
            Shape::ChunkedAndLength {
                chunks,
                length,
                length_first,
            } => {
                let pair = [(cl, length.to_string()), (te, chunks.coding.to_owned())];
                if *length_first {
                    fields.extend(pair);
                } else {
                    fields.extend(pair.into_iter().rev());
                }
                chunks.bytes()
            }
        };
        let mut out = self.empty_lines.concat().into_bytes();
        out.extend(format!("POST /m{index} HTTP/1.1{eol}").as_bytes());
        for (n, v) in fields {
            out.extend(format!("{n}: {v}{eol}").as_bytes());
        }
        out.extend(eol.as_bytes());
        out.extend(body);
        out
    }

    /// The verdict the scanner must give this head.
    fn verdict(&self) -> Verdict {
        match &self.shape {
            Shape::NoBody => Verdict::Accept(BodyFraming::None),
            Shape::Length(body) => Verdict::Accept(BodyFraming::Length(body.len() as u64)),
            Shape::DuplicateLength { .. } => Verdict::Refuse(FramingError::MultipleContentLength),
            Shape::Chunked(_) => Verdict::Accept(BodyFraming::Chunked),
            Shape::ChunkedAndLength { .. } => {
                Verdict::Refuse(FramingError::TransferEncodingAndContentLength)
            }
        }
    }

    /// The body bytes a server delivers.
    fn content(&self) -> Vec<u8> {
        match &self.shape {
            Shape::NoBody => Vec::new(),
            Shape::Length(body) | Shape::DuplicateLength { body, .. } => body.clone(),
            Shape::Chunked(c) | Shape::ChunkedAndLength { chunks: c, .. } => c.data.concat(),
        }
    }
}

impl Chunks {
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for data in &self.data {
            let size = if self.upper_hex {
                format!("{:X}", data.len())
            } else {
                format!("{:x}", data.len())
            };
            let ext = if self.extensions { " ;n=v" } else { "" };
            out.extend(format!("{size}{ext}\r\n").as_bytes());
            out.extend(data);
            out.extend(b"\r\n");
        }
        out.extend(b"0\r\n");
        for t in &self.trailers {
            out.extend(format!("{t}\r\n").as_bytes());
        }
        out.extend(b"\r\n");
        out
    }
}

fn chunks() -> impl Strategy<Value = Chunks> {
    (
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..4),
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec("[A-Z][a-z]{0,6}: [a-z0-9]{0,8}", 0..3),
        prop_oneof![Just("chunked"), Just("Chunked"), Just("gzip, chunked")],
    )
        .prop_map(|(data, extensions, upper_hex, trailers, coding)| Chunks {
            data,
            extensions,
            upper_hex,
            trailers,
            coding,
        })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..60)
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        3 => Just(Shape::NoBody),
        3 => body().prop_map(Shape::Length),
        2 => (body(), 2usize..4, prop::bool::weighted(0.2))
            .prop_map(|(body, copies, list)| Shape::DuplicateLength { body, copies, list }),
        3 => chunks().prop_map(Shape::Chunked),
        1 => (chunks(), 0u64..100, any::<bool>()).prop_map(|(chunks, length, length_first)| {
            Shape::ChunkedAndLength { chunks, length, length_first }
        }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (
        proptest::collection::vec(prop_oneof![Just("\r\n"), Just("\n")], 0..2),
        prop::bool::weighted(0.2),
        any::<bool>(),
        proptest::collection::vec(("x-[a-z]{1,8}", "[ -~]{0,12}"), 0..3),
        shape(),
    )
        .prop_map(
            |(empty_lines, lf_only, upper_names, filler, shape)| Message {
                empty_lines,
                lf_only,
                upper_names,
                // Values without surrounding whitespace, as a parser keeps them.
                filler: filler
                    .into_iter()
                    .map(|(n, v)| (n, v.trim().to_owned()))
                    .collect(),
                shape,
            },
        )
}

fn stream_of(messages: &[Message]) -> Vec<u8> {
    messages
        .iter()
        .enumerate()
        .flat_map(|(i, m)| m.bytes(i))
        .collect()
}

fn scan(parts: &[&[u8]]) -> Vec<Verdict> {
    let mut scanner = Http1FramingScanner::new();
    let mut out = Vec::new();
    for part in parts {
        scanner.feed(part, |v| out.push(v));
    }
    out
}

/// A request as hyper's HTTP/1 server handed it over.
struct Served {
    headers: HeaderMap,
    body: Vec<u8>,
}

/// Serves `stream` (one client connection, the whole stream written at
/// once) with hyper's HTTP/1 server; every request it parsed, in order.
fn hyper_serves(stream: Vec<u8>) -> Vec<Served> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (client, server) = tokio::io::duplex(stream.len() + (1 << 16));
        let served = Arc::new(Mutex::new(Vec::new()));
        let log = served.clone();
        let svc = service_fn(move |req: Request<Incoming>| {
            let log = log.clone();
            async move {
                let headers = req.headers().clone();
                let body = req.into_body().collect().await.unwrap().to_bytes().to_vec();
                log.lock().unwrap().push(Served { headers, body });
                Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
            }
        });
        // Half-close: the client shuts its write side after the stream and
        // waits for the answers.
        let conn = hyper::server::conn::http1::Builder::new()
            .half_close(true)
            .serve_connection(TokioIo::new(server), svc);
        let (mut rd, mut wr) = tokio::io::split(client);
        let server = async move {
            // Drops the server's end when done, so the client sees EOF.
            let _ = conn.await;
        };
        let writer = async move {
            let _ = wr.write_all(&stream).await;
            let _ = wr.shutdown().await;
        };
        let reader = async move {
            let mut sink = Vec::new();
            let _ = rd.read_to_end(&mut sink).await;
        };
        tokio::join!(server, writer, reader);
        let served = std::mem::take(&mut *served.lock().unwrap());
        served
    })
}

/// How many of `messages` hyper serves: it refuses a `Content-Length`
/// list, and closes the connection after a request with both
/// `Content-Length` and `Transfer-Encoding`.
fn hyper_serves_count(messages: &[Message]) -> usize {
    for (i, m) in messages.iter().enumerate() {
        match m.shape {
            Shape::DuplicateLength { list: true, .. } => return i,
            Shape::ChunkedAndLength { .. } => return i + 1,
            _ => {}
        }
    }
    messages.len()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn verdicts_are_what_the_stream_was_built_to_be(
        messages in proptest::collection::vec(message(), 1..8),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let stream = stream_of(&messages);
        let expected: Vec<Verdict> = messages.iter().map(Message::verdict).collect();
        prop_assert_eq!(scan(&[&stream]), expected.clone());

        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        points.sort_unstable();
        let mut parts = Vec::new();
        let mut from = 0;
        for p in points {
            parts.push(&stream[from..p]);
            from = p;
        }
        parts.push(&stream[from..]);
        prop_assert_eq!(scan(&parts), expected);
    }

    #[test]
    fn scanner_and_hyper_find_the_same_requests(
        messages in proptest::collection::vec(message(), 1..6),
    ) {
        let stream = stream_of(&messages);
        let verdicts = scan(&[&stream]);
        let served = hyper_serves(stream);
        prop_assert_eq!(served.len(), hyper_serves_count(&messages));

        let mut queue = VerdictQueue::new();
        for v in &verdicts {
            queue.push(*v);
        }
        for (i, (req, msg)) in served.iter().zip(&messages).enumerate() {
            // Same boundaries: hyper read this message's body.
            prop_assert_eq!(&req.body, &msg.content(), "request {}", i);
            // The verdict paired with this request is this head's.
            let expected = match msg.verdict() {
                Verdict::Refuse(e) => Err(e),
                _ => Ok(()),
            };
            prop_assert_eq!(queue.next_for(&req.headers), expected, "request {}", i);
        }
    }
}

#[test]
fn hyper_hides_what_the_scanner_sees() {
    // hyper drops `Content-Length` next to `Transfer-Encoding` and folds
    // equal duplicates: the parsed headers alone cannot show either.
    let stream =
        b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            .to_vec();
    let served = hyper_serves(stream.clone());
    assert_eq!(served.len(), 1);
    assert!(served[0].headers.get("content-length").is_none());
    assert_eq!(
        scan(&[&stream]),
        [Verdict::Refuse(
            FramingError::TransferEncodingAndContentLength
        )]
    );

    let stream = b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc".to_vec();
    let served = hyper_serves(stream.clone());
    assert_eq!(served.len(), 1);
    assert_eq!(
        served[0].headers.get_all("content-length").iter().count(),
        1
    );
    assert_eq!(
        scan(&[&stream]),
        [Verdict::Refuse(FramingError::MultipleContentLength)]
    );
}
