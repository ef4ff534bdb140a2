use http::{HeaderMap, HeaderName, HeaderValue, Version};

use super::*;

type Fields = &'static [(&'static str, &'static str)];

fn headers(fields: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in fields {
        h.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value.as_bytes()).unwrap(),
        );
    }
    h
}

#[test]
fn accepted_framings() {
    let cases: &[(Fields, Version)] = &[
        (&[], Version::HTTP_11),
        (&[], Version::HTTP_10),
        (&[], Version::HTTP_2),
        (&[("content-length", "0")], Version::HTTP_11),
        (&[("content-length", "42")], Version::HTTP_11),
        (&[("content-length", "007")], Version::HTTP_11),
        (
            &[("content-length", "18446744073709551615")],
            Version::HTTP_11,
        ),
        (&[("content-length", "42")], Version::HTTP_10),
        (&[("content-length", "42")], Version::HTTP_2),
        (&[("transfer-encoding", "chunked")], Version::HTTP_11),
        (&[("transfer-encoding", "Chunked")], Version::HTTP_11),
        (&[("transfer-encoding", "CHUNKED")], Version::HTTP_11),
        (&[("te", "trailers")], Version::HTTP_2),
        (&[("te", "Trailers")], Version::HTTP_2),
        (
            &[("te", "trailers"), ("content-length", "5")],
            Version::HTTP_3,
        ),
        (
            &[("connection", "keep-alive"), ("keep-alive", "timeout=5")],
            Version::HTTP_11,
        ),
        (
            &[("upgrade", "websocket"), ("connection", "upgrade")],
            Version::HTTP_11,
        ),
    ];
    for (fields, version) in cases {
        assert_eq!(
            check_framing(&headers(fields), *version),
            Ok(()),
            "{fields:?} {version:?}"
        );
    }
}

#[test]
fn refused_framings() {
    let cases: &[(Fields, Version, &str)] = &[
        // CL.TE / TE.CL smuggling
        (
            &[("transfer-encoding", "chunked"), ("content-length", "5")],
            Version::HTTP_11,
            "te_and_cl",
        ),
        (
            &[("content-length", "5"), ("transfer-encoding", "chunked")],
            Version::HTTP_11,
            "te_and_cl",
        ),
        (
            &[("transfer-encoding", "identity"), ("content-length", "5")],
            Version::HTTP_11,
            "te_and_cl",
        ),
        // several Content-Length, even equal
        (
            &[("content-length", "5"), ("content-length", "5")],
            Version::HTTP_11,
            "duplicate_content_length",
        ),
        (
            &[("content-length", "5"), ("content-length", "6")],
            Version::HTTP_11,
            "duplicate_content_length",
        ),
        (
            &[("content-length", "5, 5")],
            Version::HTTP_11,
            "duplicate_content_length",
        ),
        (
            &[("content-length", "5,6")],
            Version::HTTP_11,
            "duplicate_content_length",
        ),
        (
            &[("content-length", ",5")],
            Version::HTTP_11,
            "duplicate_content_length",
        ),
        (
            &[("content-length", "5"), ("content-length", "5")],
            Version::HTTP_2,
            "duplicate_content_length",
        ),
        // malformed Content-Length
        (
            &[("content-length", "")],
            Version::HTTP_11,
            "bad_content_length",
        ),
        (
            &[("content-length", "+5")],
            Version::HTTP_11,
            "bad_content_length",
        ),
        (
            &[("content-length", "-1")],
            Version::HTTP_11,
            "bad_content_length",
        ),
        (
            &[("content-length", " 5")],
            Version::HTTP_11,
            "bad_content_length",
        ),
        (
            &[("content-length", "5 ")],
            Version::HTTP_11,
            "bad_content_length",
        ),
        (
            &[("content-length", "0x10")],
            Version::HTTP_11,
            "bad_content_length",
        ),
        (
            &[("content-length", "1e3")],
            Version::HTTP_11,
            "bad_content_length",
        ),
        (
            &[("content-length", "5\u{a0}")],
            Version::HTTP_11,
            "bad_content_length",
        ),
        (
            &[("content-length", "18446744073709551616")],
            Version::HTTP_11,
            "bad_content_length",
        ),
        // Transfer-Encoding other than exactly `chunked`
        (
            &[("transfer-encoding", "gzip")],
            Version::HTTP_11,
            "bad_transfer_encoding",
        ),
        (
            &[("transfer-encoding", "identity")],
            Version::HTTP_11,
            "bad_transfer_encoding",
        ),
        (
            &[("transfer-encoding", "gzip, chunked")],
            Version::HTTP_11,
            "bad_transfer_encoding",
        ),
        (
            &[("transfer-encoding", "chunked, chunked")],
            Version::HTTP_11,
            "bad_transfer_encoding",
        ),
        (
            &[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
            Version::HTTP_11,
            "bad_transfer_encoding",
        ),
        (
            &[("transfer-encoding", "chunked ")],
            Version::HTTP_11,
            "bad_transfer_encoding",
        ),
        (
            &[("transfer-encoding", " chunked")],
            Version::HTTP_11,
            "bad_transfer_encoding",
        ),
        (
            &[("transfer-encoding", "chunked;a=b")],
            Version::HTTP_11,
            "bad_transfer_encoding",
        ),
        (
            &[("transfer-encoding", "xchunked")],
            Version::HTTP_11,
            "bad_transfer_encoding",
        ),
        (
            &[("transfer-encoding", "")],
            Version::HTTP_11,
            "bad_transfer_encoding",
        ),
        (
            &[("transfer-encoding", "chunk")],
            Version::HTTP_11,
            "bad_transfer_encoding",
        ),
        // Transfer-Encoding on HTTP/1.0
        (
            &[("transfer-encoding", "chunked")],
            Version::HTTP_10,
            "te_on_http10",
        ),
        // connection-specific headers on HTTP/2 and HTTP/3
        (
            &[("transfer-encoding", "chunked")],
            Version::HTTP_2,
            "h2_connection_header",
        ),
        (
            &[("connection", "close")],
            Version::HTTP_2,
            "h2_connection_header",
        ),
        (
            &[("keep-alive", "timeout=5")],
            Version::HTTP_2,
            "h2_connection_header",
        ),
        (
            &[("proxy-connection", "keep-alive")],
            Version::HTTP_2,
            "h2_connection_header",
        ),
        (
            &[("upgrade", "websocket")],
            Version::HTTP_2,
            "h2_connection_header",
        ),
        (&[("te", "gzip")], Version::HTTP_2, "h2_connection_header"),
        (
            &[("te", "trailers, gzip")],
            Version::HTTP_2,
            "h2_connection_header",
        ),
        (
            &[("te", "trailers"), ("te", "gzip")],
            Version::HTTP_2,
            "h2_connection_header",
        ),
        (
            &[("connection", "close")],
            Version::HTTP_3,
            "h2_connection_header",
        ),
        // HTTP/0.9
        (&[], Version::HTTP_09, "unsupported_version"),
    ];
    for (fields, version, code) in cases {
        match check_framing(&headers(fields), *version) {
            Ok(()) => panic!("{fields:?} {version:?} accepted"),
            Err(e) => assert_eq!(e.reason_code(), *code, "{fields:?} {version:?}: {e}"),
        }
    }
}

#[test]
fn statuses() {
    assert_eq!(
        FramingError::UnsupportedTransferEncoding.status(),
        StatusCode::NOT_IMPLEMENTED
    );
    assert_eq!(
        FramingError::TransferEncodingAndContentLength.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        FramingError::UnsupportedVersion.status(),
        StatusCode::HTTP_VERSION_NOT_SUPPORTED
    );
}

#[test]
fn connection_specific_error_names_the_header() {
    let err = check_framing(&headers(&[("upgrade", "h2c")]), Version::HTTP_2).unwrap_err();
    assert_eq!(
        err,
        FramingError::ConnectionSpecificHeader { name: "upgrade" }
    );
    assert_eq!(
        err.to_string(),
        "connection-specific header `upgrade` is not allowed in http/2"
    );
}
