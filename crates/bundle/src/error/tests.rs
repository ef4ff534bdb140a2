use super::*;
use crate::test_util::ts;

fn report(rejected: Vec<(&str, Rejection)>) -> SignatureReport {
    SignatureReport::new(
        2,
        vec!["ops-1".to_owned()],
        rejected
            .into_iter()
            .map(|(id, r)| (id.to_owned(), r))
            .collect(),
    )
}

#[test]
fn signature_report_reason_names_the_most_telling_cause() {
    let expired = Rejection::Expired {
        not_after: ts("2025-01-01T00:00:00Z"),
    };
    let early = Rejection::NotYetValid {
        not_before: ts("2026-01-01T00:00:00Z"),
    };
    assert_eq!(report(vec![]).reason(), "too_few_signatures");
    assert_eq!(
        report(vec![("x", Rejection::UnknownKey)]).reason(),
        "unknown_key"
    );
    assert_eq!(
        report(vec![("x", Rejection::UnknownKey), ("y", early.clone())]).reason(),
        "key_not_yet_valid"
    );
    assert_eq!(
        report(vec![("y", early.clone()), ("z", expired.clone())]).reason(),
        "expired_key"
    );
    assert_eq!(
        report(vec![
            ("z", expired),
            ("w", Rejection::BadSignature),
            ("y", early)
        ])
        .reason(),
        "bad_signature"
    );
}

#[test]
fn signature_report_message_names_every_key() {
    let err = BundleError::Signatures(report(vec![
        ("bad-1", Rejection::BadSignature),
        (
            "old-1",
            Rejection::Expired {
                not_after: ts("2025-01-01T00:00:00Z"),
            },
        ),
        ("who", Rejection::UnknownKey),
    ]));
    assert_eq!(
        err.to_string(),
        "too few signatures: 1 valid of 2 required; valid: `ops-1`; bad signature: `bad-1`; \
         expired: `old-1` (not after 2025-01-01T00:00:00Z); unknown key: `who`"
    );
    assert_eq!(err.reason(), "bad_signature");
}

#[test]
fn messages_follow_the_house_style() {
    let errors = [
        BundleError::TooLarge { len: 9, max: 8 },
        BundleError::Truncated("entry is cut short"),
        BundleError::MissingFile("policy.yaml".to_owned()),
        BundleError::Rollback {
            revision: 1,
            digest: "aa".to_owned(),
            highest: 2,
            highest_digest: "bb".to_owned(),
        },
        BundleError::RootUpdateRefused(Box::new(BundleError::BadTrustRoot("x".to_owned()))),
    ];
    for e in errors {
        let msg = e.to_string();
        assert!(!msg.ends_with('.'), "{msg}");
        assert!(msg.starts_with(|c: char| c.is_lowercase()), "{msg}");
    }
}

#[test]
fn echo_escapes_and_truncates_untrusted_text() {
    assert_eq!(echo(b"a\x1b[31m`b"), "a\\u{1b}[31m\\`b");
    assert_eq!(echo(b"\xff"), "\u{fffd}");
    let long = echo(&[b'x'; MAX_ECHO_CHARS + 10]);
    assert_eq!(long.chars().count(), MAX_ECHO_CHARS + 1);
    assert!(long.ends_with('…'));
}
