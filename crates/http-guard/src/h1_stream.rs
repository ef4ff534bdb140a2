//! Message framing of an HTTP/1 connection, read off its byte stream
//! (RFC 9112 §6).
//!
//! hyper's HTTP/1 parser removes `Content-Length` from a request that also
//! carries `Transfer-Encoding`, and folds equal duplicate `Content-Length`
//! fields into one, so [`check_framing`](crate::check_framing) never sees
//! either. [`Http1FramingScanner`] reads the same bytes as the parser,
//! just before it, and gives one [`Verdict`] per request head, in order;
//! [`VerdictQueue`] hands each request its verdict when the parser hands
//! the request over.
//!
//! The scanner follows the stream as hyper 1.x does: empty lines before a
//! request line are skipped; a head ends at the first empty line, with
//! lines ended by CRLF or LF; a request with `Transfer-Encoding` (last
//! coding `chunked`) has a chunked body, else one with `Content-Length`
//! has that many bytes, else it has none; chunk-size lines (hex digits,
//! optional whitespace and extensions), chunk data, and the trailer section
//! are read with strict CRLFs. Where the parser refuses input it closes
//! the connection, so what the scanner makes of that input does not
//! matter. Where the scanner cannot follow the stream (a malformed chunk,
//! an unusable `Content-Length`, a head over its limit), it gives a final
//! [`Verdict::Unparseable`] and stops: every later request on the
//! connection is refused.
//!
//! The scanner does no I/O, keeps at most one request head (bounded), and
//! reads every byte once; body bytes are skipped without being looked at.

use std::collections::VecDeque;

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::HeaderMap;

use crate::framing::FramingError;

/// Longest request head the scanner follows by default, empty lines before
/// it included: twice the gateway's default HTTP/1 read buffer of 64 KiB,
/// since hyper may read past its buffer limit in one read.
pub const MAX_HEAD_BYTES: usize = 128 * 1024;

/// Verdicts kept for request heads the parser has not reached yet: far
/// more than any client pipelines; beyond it, later requests are refused
/// instead of memory grown.
pub const MAX_PENDING_VERDICTS: usize = 1024;

/// Capacity of the partial-head buffer kept between heads; a larger one,
/// grown for an unusually large head, is released.
const RETAINED_HEAD_CAPACITY: usize = 16 * 1024;

const HEAD_TOO_LARGE: &str = "request head is too large";
const BAD_CONTENT_LENGTH: &str = "`content-length` is not a decimal number";
const CONFLICTING_CONTENT_LENGTH: &str = "`content-length` values differ";
const NOT_CHUNKED: &str = "`transfer-encoding` does not end in `chunked`";
const FOLDED_FIELD: &str = "framing field continued by line folding";
const BAD_CHUNK_SIZE: &str = "chunk size is not hexadecimal";
const CHUNK_SIZE_OVERFLOW: &str = "chunk size overflows";
const BAD_CHUNK_LINE: &str = "chunk size line is malformed";
const BAD_CHUNK_END: &str = "chunk data is not followed by crlf";
const BAD_TRAILER: &str = "trailer section is malformed";

/// How a request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// Neither `Content-Length` nor `Transfer-Encoding`: no body.
    None,
    /// `Content-Length`: exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding` ending in `chunked`.
    Chunked,
}

impl BodyFraming {
    /// Whether `headers`, as the HTTP/1 parser produced them from the same
    /// head, frame the body this way. A mismatch means the scanner and the
    /// parser disagree on the stream.
    pub fn agrees_with(self, headers: &HeaderMap) -> bool {
        let chunked = headers.contains_key(TRANSFER_ENCODING);
        let mut lengths = headers.get_all(CONTENT_LENGTH).iter();
        let first = lengths.next();
        let single = lengths.next().is_none();
        match self {
            Self::None => !chunked && first.is_none(),
            Self::Chunked => chunked && first.is_none(),
            Self::Length(n) => {
                !chunked && single && first.and_then(|v| decimal(v.as_bytes())) == Some(n)
            }
        }
    }
}

/// What the scanner concluded about one request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Unambiguous framing; the body is framed as given.
    Accept(BodyFraming),
    /// Refused framing (`te_and_cl`, `duplicate_content_length`); the
    /// scanner still follows the stream past it, as hyper reads it.
    Refuse(FramingError),
    /// The scanner cannot follow the stream from here: the last verdict
    /// of the connection.
    Unparseable(&'static str),
}

/// Where the end-of-head matcher is within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// Inside a line.
    Text,
    /// Just after an LF: an LF or CRLF now ends the head.
    AfterLf,
    /// After an LF and a CR: an LF now ends the head.
    AfterLfCr,
}

/// Position in a chunked body, as hyper's chunked decoder reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// The first hex digit of a chunk size.
    Start,
    /// More hex digits, whitespace, `;` or CR.
    Size(u64),
    /// Whitespace after the size: more of it, `;` or CR.
    SizeWhitespace(u64),
    /// A chunk extension: anything but LF, up to CR.
    Extension(u64),
    /// The LF of the chunk-size line.
    SizeLf(u64),
    /// Chunk data left (never 0).
    Data(u64),
    /// The CR after chunk data.
    DataCr,
    /// The LF after chunk data.
    DataLf,
    /// After the last chunk: CR of the final CRLF, or a trailer field.
    EndCr,
    /// A trailer field line, up to CR.
    Trailer,
    /// The LF of a trailer field line.
    TrailerLf,
    /// The LF of the final CRLF.
    EndLf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between messages: skipping empty lines.
    Idle,
    /// Inside a request head.
    Head(Line),
    /// Inside a body of known length: bytes left (never 0).
    Length(u64),
    /// Inside a chunked body.
    Chunked(Chunk),
    /// Lost the stream: nothing more is read.
    Stopped,
}

/// Follows the bytes a client sends on one HTTP/1 connection and judges
/// the framing of every request head in them.
///
/// ```
/// use portcullis_http_guard::{BodyFraming, FramingError, Http1FramingScanner, Verdict};
///
/// let mut scanner = Http1FramingScanner::new();
/// let mut verdicts = Vec::new();
/// scanner.feed(b"POST /a HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Enc", |v| verdicts.push(v));
/// scanner.feed(b"oding: chunked\r\n\r\n0\r\n\r\nGET /b HTTP/1.1\r\n\r\n", |v| verdicts.push(v));
/// assert_eq!(
///     verdicts,
///     [
///         Verdict::Refuse(FramingError::TransferEncodingAndContentLength),
///         Verdict::Accept(BodyFraming::None),
///     ]
/// );
/// ```
#[derive(Debug)]
pub struct Http1FramingScanner {
    state: State,
    /// The bytes of a head that began in an earlier [`feed`](Self::feed).
    partial_head: Vec<u8>,
    /// Bytes of the current head so far, empty lines before it included.
    head_len: usize,
    max_head_bytes: usize,
}

impl Default for Http1FramingScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl Http1FramingScanner {
    /// A scanner for a new connection, with heads up to [`MAX_HEAD_BYTES`].
    pub fn new() -> Self {
        Self::with_max_head_bytes(MAX_HEAD_BYTES)
    }

    /// A scanner for a new connection, with heads up to `max_head_bytes`.
    /// It must be at least what the HTTP/1 parser accepts, or requests the
    /// parser accepts are refused.
    pub fn with_max_head_bytes(max_head_bytes: usize) -> Self {
        Self {
            state: State::Idle,
            partial_head: Vec::new(),
            head_len: 0,
            max_head_bytes,
        }
    }

    /// Whether the scanner lost the stream (after [`Verdict::Unparseable`]).
    pub fn is_stopped(&self) -> bool {
        self.state == State::Stopped
    }

    /// Whether the bytes read so far end exactly at the end of a message
    /// (empty lines after it aside): no head or body is partly read.
    pub fn is_between_messages(&self) -> bool {
        self.state == State::Idle
    }

    /// Whether a request head has begun and is not complete yet.
    pub fn is_in_head(&self) -> bool {
        matches!(self.state, State::Head(_))
    }

    /// Reads the next `bytes` of the stream and calls `emit` with the
    /// verdict of every request head they complete, in order. Splitting
    /// the stream differently gives the same verdicts.
    pub fn feed(&mut self, bytes: &[u8], mut emit: impl FnMut(Verdict)) {
        let mut rest = bytes;
        while !rest.is_empty() {
            rest = match self.state {
                State::Stopped => return,
                State::Idle => self.skip_empty_lines(rest, &mut emit),
                State::Head(line) => self.head(line, rest, &mut emit),
                State::Length(left) => self.length(left, rest),
                State::Chunked(chunk) => self.chunked(chunk, rest, &mut emit),
            };
        }
    }

    fn skip_empty_lines<'a>(
        &mut self,
        bytes: &'a [u8],
        emit: &mut impl FnMut(Verdict),
    ) -> &'a [u8] {
        let empty = bytes
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        if !self.grow_head(empty) {
            return self.stop(HEAD_TOO_LARGE, emit);
        }
        let rest = bytes.get(empty..).unwrap_or_default();
        if !rest.is_empty() {
            self.state = State::Head(Line::Text);
        }
        rest
    }

    fn head<'a>(
        &mut self,
        mut line: Line,
        bytes: &'a [u8],
        emit: &mut impl FnMut(Verdict),
    ) -> &'a [u8] {
        let mut at = 0;
        let end = loop {
            let Some(rest) = bytes.get(at..) else {
                break None;
            };
            match line {
                Line::Text => match rest.iter().position(|&b| b == b'\n') {
                    Some(lf) => {
                        at += lf + 1;
                        line = Line::AfterLf;
                    }
                    None => break None,
                },
                Line::AfterLf | Line::AfterLfCr => match rest.first() {
                    None => break None,
                    Some(b'\n') => break Some(at + 1),
                    Some(b'\r') if line == Line::AfterLf => {
                        at += 1;
                        line = Line::AfterLfCr;
                    }
                    Some(_) => {
                        at += 1;
                        line = Line::Text;
                    }
                },
            }
        };
        let taken = end.unwrap_or(bytes.len());
        if !self.grow_head(taken) {
            return self.stop(HEAD_TOO_LARGE, emit);
        }
        let (this, rest) = bytes.split_at_checked(taken).unwrap_or((bytes, &[]));
        if end.is_none() {
            self.partial_head.extend_from_slice(this);
            self.state = State::Head(line);
            return rest;
        }
        let fields = if self.partial_head.is_empty() {
            HeadFields::scan(this)
        } else {
            self.partial_head.extend_from_slice(this);
            let fields = HeadFields::scan(&self.partial_head);
            self.partial_head.clear();
            if self.partial_head.capacity() > RETAINED_HEAD_CAPACITY {
                self.partial_head = Vec::new();
            }
            fields
        };
        self.head_len = 0;
        let (refusal, framing) = fields.judge();
        if let Some(e) = refusal {
            emit(Verdict::Refuse(e));
        }
        match framing {
            Ok(framing) => {
                if refusal.is_none() {
                    emit(Verdict::Accept(framing));
                }
                self.state = match framing {
                    BodyFraming::None | BodyFraming::Length(0) => State::Idle,
                    BodyFraming::Length(n) => State::Length(n),
                    BodyFraming::Chunked => State::Chunked(Chunk::Start),
                };
                rest
            }
            Err(reason) => self.stop(reason, emit),
        }
    }

    /// Counts `n` more bytes of the current head; false if over the limit.
    fn grow_head(&mut self, n: usize) -> bool {
        self.head_len = self.head_len.saturating_add(n);
        self.head_len <= self.max_head_bytes
    }

    fn length<'a>(&mut self, left: u64, bytes: &'a [u8]) -> &'a [u8] {
        let (left, rest) = skip(left, bytes);
        self.state = if left == 0 {
            State::Idle
        } else {
            State::Length(left)
        };
        rest
    }

    fn chunked<'a>(
        &mut self,
        mut chunk: Chunk,
        mut bytes: &'a [u8],
        emit: &mut impl FnMut(Verdict),
    ) -> &'a [u8] {
        loop {
            if let Chunk::Data(left) = chunk {
                let (left, rest) = skip(left, bytes);
                chunk = if left == 0 {
                    Chunk::DataCr
                } else {
                    Chunk::Data(left)
                };
                bytes = rest;
            }
            let Some((&b, rest)) = bytes.split_first() else {
                self.state = State::Chunked(chunk);
                return bytes;
            };
            bytes = rest;
            chunk = match (chunk, b) {
                (Chunk::Start, b) => match hex_digit(b) {
                    Some(d) => Chunk::Size(d),
                    None => return self.stop(BAD_CHUNK_SIZE, emit),
                },
                (Chunk::Size(n), b) => match (hex_digit(b), b) {
                    (Some(d), _) => match n.checked_mul(16).and_then(|n| n.checked_add(d)) {
                        Some(n) => Chunk::Size(n),
                        None => return self.stop(CHUNK_SIZE_OVERFLOW, emit),
                    },
                    (None, b' ' | b'\t') => Chunk::SizeWhitespace(n),
                    (None, b';') => Chunk::Extension(n),
                    (None, b'\r') => Chunk::SizeLf(n),
                    (None, _) => return self.stop(BAD_CHUNK_LINE, emit),
                },
                (Chunk::SizeWhitespace(n), b' ' | b'\t') => Chunk::SizeWhitespace(n),
                (Chunk::SizeWhitespace(n), b';') => Chunk::Extension(n),
                (Chunk::SizeWhitespace(n) | Chunk::Extension(n), b'\r') => Chunk::SizeLf(n),
                (Chunk::SizeWhitespace(_) | Chunk::Extension(_), b'\n') => {
                    return self.stop(BAD_CHUNK_LINE, emit)
                }
                (Chunk::SizeWhitespace(_), _) => return self.stop(BAD_CHUNK_LINE, emit),
                (Chunk::Extension(n), _) => Chunk::Extension(n),
                (Chunk::SizeLf(0), b'\n') => Chunk::EndCr,
                (Chunk::SizeLf(n), b'\n') => Chunk::Data(n),
                (Chunk::SizeLf(_), _) => return self.stop(BAD_CHUNK_LINE, emit),
                // Not reached (data is skipped above); reads one data byte.
                (Chunk::Data(n), _) => match n.saturating_sub(1) {
                    0 => Chunk::DataCr,
                    n => Chunk::Data(n),
                },
                (Chunk::DataCr, b'\r') => Chunk::DataLf,
                (Chunk::DataLf, b'\n') => Chunk::Start,
                (Chunk::DataCr | Chunk::DataLf, _) => return self.stop(BAD_CHUNK_END, emit),
                (Chunk::EndCr, b'\r') => Chunk::EndLf,
                (Chunk::Trailer, b'\r') => Chunk::TrailerLf,
                (Chunk::EndCr | Chunk::Trailer, b'\n') => return self.stop(BAD_TRAILER, emit),
                (Chunk::EndCr | Chunk::Trailer, _) => Chunk::Trailer,
                (Chunk::TrailerLf, b'\n') => Chunk::EndCr,
                (Chunk::TrailerLf, _) => return self.stop(BAD_TRAILER, emit),
                (Chunk::EndLf, b'\n') => {
                    self.state = State::Idle;
                    return bytes;
                }
                (Chunk::EndLf, _) => return self.stop(BAD_TRAILER, emit),
            };
            if matches!(chunk, Chunk::Trailer | Chunk::Extension(_)) {
                // The rest of the line, up to its CR, in one step.
                let line = bytes
                    .iter()
                    .position(|&b| b == b'\r' || b == b'\n')
                    .unwrap_or(bytes.len());
                bytes = bytes.get(line..).unwrap_or_default();
            }
        }
    }

    /// Gives the final verdict and stops reading.
    fn stop<'a>(&mut self, reason: &'static str, emit: &mut impl FnMut(Verdict)) -> &'a [u8] {
        emit(Verdict::Unparseable(reason));
        self.state = State::Stopped;
        self.partial_head = Vec::new();
        &[]
    }
}

/// Skips up to `left` bytes: the bytes still to skip, and the rest.
fn skip(left: u64, bytes: &[u8]) -> (u64, &[u8]) {
    let take = usize::try_from(left).map_or(bytes.len(), |left| left.min(bytes.len()));
    let left = left.saturating_sub(u64::try_from(take).unwrap_or(u64::MAX));
    (left, bytes.get(take..).unwrap_or_default())
}

/// The framing fields of one request head.
#[derive(Debug, Default)]
struct HeadFields {
    /// `Content-Length` values: one per field line, one per list element.
    lengths: usize,
    /// The first valid `Content-Length` value.
    length: Option<u64>,
    /// A `Content-Length` value that is not 1+ ASCII digits fitting a u64.
    bad_length: bool,
    /// `Content-Length` values that differ.
    conflicting_lengths: bool,
    transfer_encoding: bool,
    /// The last `Transfer-Encoding` field line ends in `chunked` (hyper
    /// goes by the last line).
    chunked: bool,
    /// A `Content-Length` or `Transfer-Encoding` field continued by
    /// obsolete line folding.
    folded: bool,
}

impl HeadFields {
    /// Reads the field lines of `head` (request line first; lines ended by
    /// LF or CRLF; stops at the first empty line). Field names are matched
    /// ASCII case-insensitively, with whitespace before the colon ignored;
    /// a line starting with whitespace continues the previous field.
    fn scan(head: &[u8]) -> Self {
        let mut fields = Self::default();
        let mut previous_is_framing = false;
        for line in head.split(|&b| b == b'\n').skip(1) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                break;
            }
            if matches!(line.first(), Some(b' ' | b'\t')) {
                fields.folded |= previous_is_framing;
                continue;
            }
            let Some((name, value)) = split_field(line) else {
                previous_is_framing = false;
                continue;
            };
            let name = trim_whitespace(name);
            let value = trim_whitespace(value);
            previous_is_framing = true;
            if name.eq_ignore_ascii_case(b"content-length") {
                fields.content_length(value);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                fields.transfer_encoding = true;
                let last = value.rsplit(|&b| b == b',').next().unwrap_or(value);
                fields.chunked = trim_whitespace(last).eq_ignore_ascii_case(b"chunked");
            } else {
                previous_is_framing = false;
            }
        }
        fields
    }

    fn content_length(&mut self, value: &[u8]) {
        for element in value.split(|&b| b == b',') {
            self.lengths = self.lengths.saturating_add(1);
            match (decimal(trim_whitespace(element)), self.length) {
                (None, _) => self.bad_length = true,
                (Some(n), None) => self.length = Some(n),
                (Some(n), Some(first)) => self.conflicting_lengths |= n != first,
            }
        }
    }

    /// The head's refusal, if any, and how its body is framed (as hyper
    /// reads it), or why the stream cannot be followed past it.
    fn judge(&self) -> (Option<FramingError>, Result<BodyFraming, &'static str>) {
        if self.folded {
            return (None, Err(FOLDED_FIELD));
        }
        let refusal = if self.transfer_encoding && self.lengths > 0 {
            Some(FramingError::TransferEncodingAndContentLength)
        } else if self.lengths > 1 {
            Some(FramingError::MultipleContentLength)
        } else {
            None
        };
        let framing = if self.transfer_encoding {
            if self.chunked {
                Ok(BodyFraming::Chunked)
            } else {
                Err(NOT_CHUNKED)
            }
        } else if self.bad_length {
            Err(BAD_CONTENT_LENGTH)
        } else if self.conflicting_lengths {
            Err(CONFLICTING_CONTENT_LENGTH)
        } else {
            Ok(self.length.map_or(BodyFraming::None, BodyFraming::Length))
        };
        (refusal, framing)
    }
}

/// Splits a field line at its first colon.
fn split_field(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = line.iter().position(|&b| b == b':')?;
    let (name, value) = line.split_at_checked(colon)?;
    Some((name, value.get(1..)?))
}

/// `s` without leading and trailing spaces and tabs.
fn trim_whitespace(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// 1+ ASCII digits fitting a u64, as hyper reads `Content-Length` (no
/// sign, no whitespace).
fn decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

fn hex_digit(b: u8) -> Option<u64> {
    char::from(b).to_digit(16).map(u64::from)
}

/// The verdicts of one connection's request heads, in order: filled by
/// the [`Http1FramingScanner`] as it reads heads, emptied as the parser
/// hands over requests. It fails closed: once the pairing of verdicts and
/// requests is in doubt, every later request is refused.
#[derive(Debug, Default)]
pub struct VerdictQueue {
    pending: VecDeque<Verdict>,
    /// Verdicts were dropped because [`MAX_PENDING_VERDICTS`] were waiting.
    overflowed: bool,
    /// Set once pairing failed; every later request gets this error.
    failed: Option<FramingError>,
}

impl VerdictQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the verdict of the next request head read.
    pub fn push(&mut self, verdict: Verdict) {
        if self.failed.is_some() || self.overflowed {
            return;
        }
        if self.pending.len() >= MAX_PENDING_VERDICTS {
            self.overflowed = true;
            return;
        }
        self.pending.push_back(verdict);
    }

    /// Takes the verdict of the request the parser just handed over and
    /// checks it against the request's `headers`. Errors: the head's own
    /// refusal; [`FramingError::Unparseable`], [`FramingError::NoVerdict`],
    /// [`FramingError::VerdictMismatch`] or
    /// [`FramingError::TooManyPipelined`], after which every later request
    /// gets the same error.
    pub fn next_for(&mut self, headers: &HeaderMap) -> Result<(), FramingError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let failure = match self.pending.pop_front() {
            Some(Verdict::Accept(framing)) if framing.agrees_with(headers) => return Ok(()),
            Some(Verdict::Accept(_)) => FramingError::VerdictMismatch,
            Some(Verdict::Refuse(e)) => return Err(e),
            Some(Verdict::Unparseable(reason)) => FramingError::Unparseable { reason },
            None if self.overflowed => FramingError::TooManyPipelined,
            None => FramingError::NoVerdict,
        };
        self.failed = Some(failure);
        self.pending = VecDeque::new();
        Err(failure)
    }

    /// Verdicts waiting for their request.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests;
