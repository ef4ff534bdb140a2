use super::*;

#[test]
fn reasons_are_stable_snake_case() {
    let all = [
        TokenError::Malformed("x"),
        TokenError::TooLarge { len: 2, max: 1 },
        TokenError::DuplicateMember,
        TokenError::NestingTooDeep,
        TokenError::UnsupportedAlg("HS256".into()),
        TokenError::AlgNotAllowed(Alg::Rs256),
        TokenError::EmbeddedKey("jwk"),
        TokenError::CritUnsupported,
        TokenError::UnencodedPayload,
        TokenError::BadTyp(None),
        TokenError::UnknownKid("k".into()),
        TokenError::NoKeyForAlg(Alg::Es256),
        TokenError::AmbiguousKey(Alg::Es256),
        TokenError::KeyMismatch(Alg::Ps256),
        TokenError::BadSignature,
        TokenError::Expired {
            expires_at: 1,
            now: 2,
        },
        TokenError::NotYetValid {
            not_before: 2,
            now: 1,
        },
        TokenError::IssuedInFuture {
            issued_at: 2,
            now: 1,
        },
        TokenError::WrongIssuer("i".into()),
        TokenError::WrongAudience,
        TokenError::MissingClaim("exp".into()),
        TokenError::BadClaimType("exp".into()),
        TokenError::BadCnf("x"),
    ];
    let mut seen = std::collections::HashSet::new();
    for e in &all {
        let r = e.reason();
        assert!(r.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{r}");
        assert!(seen.insert(r), "duplicate reason {r}");
    }
    assert_eq!(
        TokenError::Expired {
            expires_at: 1,
            now: 2
        }
        .reason(),
        "expired"
    );
    assert_eq!(TokenError::BadSignature.reason(), "bad_signature");
    assert_eq!(TokenError::UnknownKid("a".into()).reason(), "unknown_kid");
    assert_eq!(TokenError::WrongAudience.reason(), "wrong_audience");
}

#[test]
fn messages_are_lowercase_without_final_period() {
    let msgs = [
        TokenError::Malformed("empty header").to_string(),
        TokenError::BadTyp(None).to_string(),
        TokenError::BadTyp(Some("jose".into())).to_string(),
        TokenError::UnsupportedAlg("none".into()).to_string(),
        JwksError::NoUsableKeys(Vec::new()).to_string(),
        JwkError::RsaRoca.to_string(),
        RulesError::EmptyIssuer.to_string(),
    ];
    for m in msgs {
        assert!(!m.ends_with('.'), "{m}");
        assert!(!m.starts_with(|c: char| c.is_ascii_uppercase()), "{m}");
    }
    assert_eq!(
        TokenError::BadTyp(Some("jose".into())).to_string(),
        "token type `jose` is not accepted"
    );
    assert_eq!(
        TokenError::BadTyp(None).to_string(),
        "token type (absent) is not accepted"
    );
}

#[test]
fn jwks_reasons() {
    assert_eq!(
        JwksError::DuplicateKid("a".into()).reason(),
        "duplicate_kid"
    );
    assert_eq!(
        JwksError::PrivateKey {
            index: 0,
            member: "d"
        }
        .reason(),
        "private_key"
    );
    assert_eq!(
        JwksError::NoUsableKeys(Vec::new()).reason(),
        "no_usable_keys"
    );
}
