use super::*;

const DATA: u8 = 0x0;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn rst(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

/// A response head the gateway writes: longer than a bare status.
fn head(stream: u32, flags: u8) -> Vec<u8> {
    frame(HEADERS, 0x4 | flags, stream, &[0x88; 24])
}

fn bare(stream: u32) -> Vec<u8> {
    frame(HEADERS, 0x5, stream, &[0x48, 0x83, 0x63, 0x0c, 0x7f])
}

fn reset(stream: u32, code: u32) -> StreamRefusal {
    StreamRefusal {
        stream,
        kind: RefusalKind::Reset(code),
    }
}

fn too_large(stream: u32) -> StreamRefusal {
    StreamRefusal {
        stream,
        kind: RefusalKind::HeaderListTooLarge,
    }
}

/// What a server writes: SETTINGS, a SETTINGS ack, a WINDOW_UPDATE,
/// responses with and without bodies and trailers, a 100 Continue, resets
/// for its own reasons and for the client's, bare 431s (one followed by
/// its reset), a PING, a large DATA frame and a GOAWAY.
fn server_bytes() -> (Vec<u8>, Vec<StreamRefusal>) {
    let mut b = Vec::new();
    b.extend(frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]));
    b.extend(frame(0x4, 1, 0, &[]));
    b.extend(frame(0x8, 0, 0, &[0, 0, 0xff, 0xff]));
    // Stream 1: head, DATA, small trailers (an indexed grpc-status).
    b.extend(head(1, 0));
    b.extend(frame(DATA, 0, 1, b"hello"));
    b.extend(frame(HEADERS, 0x5, 1, &[0xbe]));
    b.extend(rst(1, 0x0)); // NO_ERROR: the response ended first
    b.extend(rst(3, 0x1)); // PROTOCOL_ERROR: malformed request
    b.extend(rst(5, 0x8)); // CANCEL: the gateway gave up
    b.extend(rst(7, 0x2)); // INTERNAL_ERROR: a response body failed
                           // Stream 9: a bare 431 and the reset that follows it (a request with
                           // a body still to come): one refusal.
    b.extend(bare(9));
    b.extend(rst(9, 0x1));
    b.extend(frame(0x6, 1, 0, &[0; 8]));
    // Stream 13: 100 Continue, then a final head of one byte (indexed)
    // and DATA that ends it; stream 15: a whole response in one HEADERS.
    b.extend(frame(HEADERS, 0x4, 13, &[0x48, 0x82, 0x08, 0x01]));
    b.extend(frame(HEADERS, 0x5, 13, &[0xbf]));
    b.extend(frame(DATA, 0, 13, &vec![0x03; 20_000])); // looks like RST_STREAM bytes
    b.extend(frame(DATA, 1, 13, &[]));
    b.extend(head(15, 1));
    b.extend(rst(11, 0x7)); // REFUSED_STREAM: may be retried, not reported
    b.extend(frame(HEADERS, 0x5, 17, &[0xbe])); // a bare 431 again, indexed
    b.extend(rst(0x7fff_ffff, 0x3)); // FLOW_CONTROL_ERROR, highest stream
    b.extend(frame(0x7, 0, 0, &[0, 0, 0, 13, 0, 0, 0, 1]));
    let want = vec![
        reset(3, 0x1),
        too_large(9),
        too_large(17),
        reset(0x7fff_ffff, 0x3),
    ];
    (b, want)
}

fn scan(chunks: &[&[u8]]) -> Vec<StreamRefusal> {
    let mut s = H2RefusalScanner::new();
    let mut found = Vec::new();
    for c in chunks {
        s.feed(c, &mut |r| found.push(r));
    }
    found
}

#[test]
fn refusals_are_reported_and_the_servers_own_resets_and_answers_are_not() {
    let (bytes, want) = server_bytes();
    assert_eq!(scan(&[&bytes]), want);
}

#[test]
fn the_result_does_not_depend_on_how_the_writes_were_cut() {
    let (bytes, want) = server_bytes();
    // Every two-way split, and byte by byte.
    for at in 0..bytes.len() {
        let (a, b) = bytes.split_at(at);
        assert_eq!(scan(&[a, b]), want, "split at {at}");
    }
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(scan(&singles), want);
}

#[test]
fn every_reset_code_is_classified() {
    for code in 0..=0xe_u32 {
        let found = scan(&[&rst(1, code)]);
        let client = [0x1, 0x3, 0x5, 0x6, 0x9, 0xb, 0xd].contains(&code);
        assert_eq!(found.len(), usize::from(client), "code {code:#x}");
        if let Some(r) = found.first() {
            assert_ne!(r.code_name(), "UNKNOWN", "{code:#x}");
            assert!(r.reason_code().starts_with("h2_stream_"), "{code:#x}");
            assert!(r.to_string().contains(r.code_name()), "{r}");
            assert_eq!(r.status(), 0);
        }
    }
    // Codes no server of this kind sends are not blamed on the client.
    assert!(scan(&[&rst(1, 0xffff)]).is_empty());
    let r = reset(3, 0x1);
    assert_eq!(r.reason_code(), "h2_stream_protocol_error");
    assert_eq!(
        r.to_string(),
        "http/2 stream 3 reset by the server with PROTOCOL_ERROR: the request was malformed \
         (a forbidden, uppercase or connection-specific field, a bad pseudo-header, or a body \
         that disagrees with its content-length)"
    );
    let r = too_large(9);
    assert_eq!(r.reason_code(), "header_too_large");
    assert_eq!(r.status(), 431);
    assert_eq!(
        r.to_string(),
        "http/2 stream 9 answered 431 by the server: the request's header list is over the limit"
    );
}

#[test]
fn a_reset_on_stream_0_or_of_another_length_is_not_a_stream_reset() {
    assert!(scan(&[&rst(0, 0x1)]).is_empty());
    assert!(scan(&[&frame(RST_STREAM, 0, 1, &[0, 0, 0, 1, 0])]).is_empty());
    // ...and the frame after it is still read.
    let mut b = frame(RST_STREAM, 0, 1, &[0, 0, 0, 1, 0, 0]);
    b.extend(rst(5, 0x1));
    assert_eq!(scan(&[&b]), [reset(5, 1)]);
}

#[test]
fn a_bare_status_is_a_short_head_that_ends_a_stream_above_every_answered_one() {
    let at_limit = frame(HEADERS, 0x5, 1, &[0; BARE_STATUS_MAX]);
    let over = frame(HEADERS, 0x5, 3, &[0; BARE_STATUS_MAX + 1]);
    // A short head that does not end the response is a 1xx or a head
    // with a body to follow.
    let open = frame(HEADERS, 0x4, 5, &[0xbe]);
    assert_eq!(scan(&[&at_limit, &over, &open]), [too_large(1)]);
    // Trailers on a long-running stream, after many later streams were
    // answered (and abandoned by their clients), are trailers.
    let mut b = head(1, 0);
    for s in (3..5000).step_by(2) {
        b.extend(head(s, 0));
    }
    b.extend(frame(HEADERS, 0x5, 1, &[0xbe]));
    b.extend(bare(5001));
    assert_eq!(scan(&[&b]), [too_large(5001)]);
}

#[test]
fn a_reset_after_a_bare_431_is_not_reported_again_but_a_later_one_elsewhere_is() {
    let mut b = Vec::new();
    for s in [1, 3, 5] {
        b.extend(bare(s));
    }
    for s in [1, 3, 5, 1] {
        b.extend(rst(s, 0x1));
    }
    b.extend(rst(7, 0x1));
    assert_eq!(
        scan(&[&b]),
        [
            too_large(1),
            too_large(3),
            too_large(5),
            reset(1, 1),
            reset(7, 1)
        ]
    );
}

#[test]
fn resets_written_long_after_their_431s_are_still_the_same_refusals() {
    // The server may write every 431 of a batch, then other streams'
    // frames, then the resets; some of the requests had ended and get no
    // reset at all.
    let mut b = Vec::new();
    let streams: Vec<u32> = (0..100).map(|i| 2 * i + 1).collect();
    for s in &streams {
        b.extend(bare(*s));
    }
    b.extend(head(301, 0));
    b.extend(frame(DATA, 1, 301, b"ok"));
    for s in streams.iter().filter(|s| *s % 3 != 0) {
        b.extend(rst(*s, 0x1));
    }
    let found = scan(&[&b]);
    assert_eq!(found.len(), 100, "{found:?}");
    assert!(found
        .iter()
        .all(|r| r.kind == RefusalKind::HeaderListTooLarge));
    // Past the bound the oldest is forgotten: its late reset is reported.
    let mut b = Vec::new();
    let total = u32::try_from(MAX_PENDING_BARE).unwrap() + 1;
    for s in 0..total {
        b.extend(bare(2 * s + 1));
    }
    b.extend(rst(1, 0x1));
    b.extend(rst(3, 0x1));
    let found = scan(&[&b]);
    assert_eq!(found.len(), MAX_PENDING_BARE + 2);
    assert_eq!(found.last(), Some(&reset(1, 1)));
}
