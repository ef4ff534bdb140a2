//! Streams the HTTP/2 layer refuses on its own, read off the frames the
//! server writes (RFC 9113 §4.1, §6.2, §6.4, §7).
//!
//! The HTTP/2 server answers some streams without handing them to the
//! gateway, so no request reaches the pipeline and nothing would be
//! counted or audited:
//! - it resets a stream whose request is malformed (an uppercase or
//!   connection-specific field such as `transfer-encoding`, a missing or
//!   bad pseudo-header, a `content-length` that disagrees with the DATA)
//!   or that breaks flow control: a `RST_STREAM` whose error code blames
//!   the client;
//! - it answers a request whose header list is over its limit with a
//!   bare `431` of its own: a HEADERS frame that opens and ends the
//!   response and holds only `:status` (followed by a `RST_STREAM
//!   PROTOCOL_ERROR` when the request had a body still to come).
//!
//! [`H2RefusalScanner`] reads the server's side of the connection and
//! reports both, once per stream. Reset codes the server uses for its
//! own reasons (`NO_ERROR`, `CANCEL`, `INTERNAL_ERROR`, …) are not
//! reported, nor is `REFUSED_STREAM`: it says a stream was not processed
//! and may be retried (a client may open more streams than allowed before
//! it has read the server's limit).
//!
//! A bare 431 is told from every other response head by two facts. The
//! server writes it while reading the stream's HEADERS, before it answers
//! any stream the client opened later, so it lands on a stream number
//! above every stream the server has answered so far; trailers and the
//! final head after a `100 Continue` land on streams already answered.
//! And no response the gateway writes is that short: every one carries a
//! 32-digit `x-portcullis-request-id`, so its header block is longer than
//! [`BARE_STATUS_MAX`] bytes.
//!
//! The scanner does no I/O and keeps a few dozen bytes of state. Payloads
//! other than a `RST_STREAM`'s four bytes are skipped without being
//! looked at.

const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const END_STREAM: u8 = 0x1;
/// Length of a frame header.
const HEADER_LEN: usize = 9;

/// The longest header block taken for a response that holds only
/// `:status`: HPACK writes one in at most five bytes (an indexed field,
/// or the indexed name and a three-digit value). Any response with a
/// request id is far longer.
pub const BARE_STATUS_MAX: usize = 15;

/// Streams answered with a bare 431 whose reset, if one follows, is not
/// reported again: the server may write other frames, and other 431s,
/// before that reset. More than a connection of the gateway's is allowed
/// to refuse (it is closed past 100); past it the oldest is forgotten.
pub const MAX_PENDING_BARE: usize = 128;

/// A stream the HTTP/2 layer refused for the client's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamRefusal {
    pub stream: u32,
    pub kind: RefusalKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// A `RST_STREAM` with this error code (RFC 9113 §7).
    Reset(u32),
    /// A bare `431`: the request's header list was over the limit.
    HeaderListTooLarge,
}

impl StreamRefusal {
    /// The reset's error code name in RFC 9113 §7; `-` for a 431.
    pub fn code_name(&self) -> &'static str {
        match self.kind {
            RefusalKind::HeaderListTooLarge => "-",
            RefusalKind::Reset(code) => match code {
                0x1 => "PROTOCOL_ERROR",
                0x3 => "FLOW_CONTROL_ERROR",
                0x5 => "STREAM_CLOSED",
                0x6 => "FRAME_SIZE_ERROR",
                0x7 => "REFUSED_STREAM",
                0x9 => "COMPRESSION_ERROR",
                0xb => "ENHANCE_YOUR_CALM",
                0xd => "HTTP_1_1_REQUIRED",
                _ => "UNKNOWN",
            },
        }
    }

    /// A stable, low-cardinality label for metrics and audit records
    /// (`header_too_large`, as for every request over the header limit).
    pub fn reason_code(&self) -> &'static str {
        match self.kind {
            RefusalKind::HeaderListTooLarge => "header_too_large",
            RefusalKind::Reset(0x1) => "h2_stream_protocol_error",
            RefusalKind::Reset(0x3) => "h2_stream_flow_control_error",
            RefusalKind::Reset(0xb) => "h2_stream_enhance_your_calm",
            RefusalKind::Reset(_) => "h2_stream_error",
        }
    }

    /// The status the client was answered with: 431, or 0 for a reset.
    pub fn status(&self) -> u16 {
        match self.kind {
            RefusalKind::HeaderListTooLarge => 431,
            RefusalKind::Reset(_) => 0,
        }
    }

    /// What the refusal means for a request, for the operator.
    fn meaning(&self) -> &'static str {
        match self.kind {
            RefusalKind::HeaderListTooLarge => "the request's header list is over the limit",
            RefusalKind::Reset(0x1) => {
                "the request was malformed (a forbidden, uppercase or connection-specific field, \
                 a bad pseudo-header, or a body that disagrees with its content-length)"
            }
            RefusalKind::Reset(0x3) => "the client sent more than the stream's flow-control window",
            RefusalKind::Reset(0xb) => "the client's stream pattern looked abusive",
            RefusalKind::Reset(_) => "the client broke the stream's protocol",
        }
    }
}

impl std::fmt::Display for StreamRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            RefusalKind::HeaderListTooLarge => write!(
                f,
                "http/2 stream {} answered 431 by the server: {}",
                self.stream,
                self.meaning()
            ),
            RefusalKind::Reset(_) => write!(
                f,
                "http/2 stream {} reset by the server with {}: {}",
                self.stream,
                self.code_name(),
                self.meaning()
            ),
        }
    }
}

/// Error codes that blame the peer: everything but `NO_ERROR`,
/// `INTERNAL_ERROR`, `SETTINGS_TIMEOUT`, `CANCEL`, `CONNECT_ERROR` and
/// `INADEQUATE_SECURITY`, which a server sends for its own reasons (a
/// response body that failed, a request it no longer needs),
/// `REFUSED_STREAM` (not processed, safe to retry), and unknown codes,
/// which this server does not send.
fn blames_client(code: u32) -> bool {
    matches!(code, 0x1 | 0x3 | 0x5 | 0x6 | 0x9 | 0xb | 0xd)
}

/// Follows the frames a server writes and reports the streams it refused
/// on its own. Feed it every byte written, in order, from the first (the
/// server's SETTINGS frame; a server sends no preface).
#[derive(Debug, Default)]
pub struct H2RefusalScanner {
    /// The frame header being read, and how much of it has come.
    header: [u8; HEADER_LEN],
    have: usize,
    /// Payload bytes of the current frame still to come.
    left: usize,
    /// The current frame is a `RST_STREAM` on this stream; its code so far.
    reset: Option<u32>,
    code: [u8; 4],
    /// The highest stream the server has written a HEADERS frame on.
    answered: u32,
    /// Streams answered with a bare 431 and not reset since (a request
    /// that had ended gets no reset), oldest first; empty, and without
    /// an allocation, until the first bare 431.
    bare: Vec<u32>,
}

impl H2RefusalScanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `bytes` and calls `found` for each refusal they complete.
    pub fn feed(&mut self, mut bytes: &[u8], found: &mut impl FnMut(StreamRefusal)) {
        while !bytes.is_empty() {
            if self.left == 0 {
                // A frame header.
                let take = (HEADER_LEN - self.have).min(bytes.len());
                let (head, rest) = bytes.split_at(take);
                if let Some(dst) = self.header.get_mut(self.have..self.have + take) {
                    dst.copy_from_slice(head);
                }
                self.have += take;
                bytes = rest;
                if self.have == HEADER_LEN {
                    self.start_frame(found);
                }
                continue;
            }
            let take = self.left.min(bytes.len());
            let (payload, rest) = bytes.split_at(take);
            if let Some(stream) = self.reset {
                // The error code: the whole payload (four bytes).
                let at = 4 - self.left;
                if let Some(dst) = self.code.get_mut(at..at + take) {
                    dst.copy_from_slice(payload);
                }
                if take == self.left {
                    self.reset = None;
                    let code = u32::from_be_bytes(self.code);
                    if blames_client(code) && !self.forget_bare(stream) {
                        found(StreamRefusal {
                            stream,
                            kind: RefusalKind::Reset(code),
                        });
                    }
                }
            }
            self.left -= take;
            bytes = rest;
        }
    }

    /// A frame header has been read: what the frame says about its
    /// stream, and what to do with its payload.
    fn start_frame(&mut self, found: &mut impl FnMut(StreamRefusal)) {
        let [l0, l1, l2, kind, flags, s0, s1, s2, s3] = self.header;
        let len = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
        let stream = u32::from_be_bytes([s0 & 0x7f, s1, s2, s3]);
        let ends = flags & END_STREAM != 0;
        self.have = 0;
        self.left = len;
        self.reset = None;
        match kind {
            HEADERS if stream != 0 => {
                if stream > self.answered && ends && len <= BARE_STATUS_MAX {
                    if self.bare.len() >= MAX_PENDING_BARE {
                        self.bare.remove(0);
                    }
                    self.bare.push(stream);
                    found(StreamRefusal {
                        stream,
                        kind: RefusalKind::HeaderListTooLarge,
                    });
                }
                self.answered = self.answered.max(stream);
            }
            // A RST_STREAM is exactly four bytes on a stream; anything
            // else the server would not write, and is skipped.
            RST_STREAM if stream != 0 && len == 4 => {
                self.reset = Some(stream);
                self.code = [0; 4];
            }
            _ => {}
        }
    }

    /// Whether `stream` was answered with a bare 431 (already reported);
    /// forgets it.
    fn forget_bare(&mut self, stream: u32) -> bool {
        match self.bare.iter().position(|s| *s == stream) {
            Some(at) => {
                self.bare.remove(at);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests;
