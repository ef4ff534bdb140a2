use super::*;

fn rules() -> IssuerRules {
    IssuerRules::new("https://idp.example", vec!["api".into()], vec![Alg::Es256]).unwrap()
}

#[test]
fn defaults() {
    let r = rules();
    assert_eq!(r.issuer(), "https://idp.example");
    assert_eq!(r.audiences(), ["api".to_owned()]);
    assert_eq!(r.algorithms(), [Alg::Es256]);
    assert_eq!(r.leeway_secs(), DEFAULT_LEEWAY_SECS);
    assert_eq!(r.max_token_bytes(), DEFAULT_MAX_TOKEN_BYTES);
    assert!(r.required_claims().is_empty());
    assert!(r.typ().is_empty());
}

#[test]
fn refuses_empty_issuer() {
    let e = IssuerRules::new("", vec!["api".into()], vec![Alg::Es256]).unwrap_err();
    assert_eq!(e, RulesError::EmptyIssuer);
}

#[test]
fn refuses_no_audience() {
    let e = IssuerRules::new("i", vec![], vec![Alg::Es256]).unwrap_err();
    assert_eq!(e, RulesError::NoAudiences);
    let e = IssuerRules::new("i", vec!["".into()], vec![Alg::Es256]).unwrap_err();
    assert_eq!(e, RulesError::EmptyAudience);
}

#[test]
fn refuses_no_algorithm() {
    let e = IssuerRules::new("i", vec!["a".into()], vec![]).unwrap_err();
    assert_eq!(e, RulesError::NoAlgorithms);
}

#[test]
fn leeway_is_bounded() {
    assert_eq!(rules().with_leeway_secs(0).unwrap().leeway_secs(), 0);
    assert_eq!(
        rules()
            .with_leeway_secs(MAX_LEEWAY_SECS)
            .unwrap()
            .leeway_secs(),
        MAX_LEEWAY_SECS
    );
    assert_eq!(
        rules().with_leeway_secs(MAX_LEEWAY_SECS + 1).unwrap_err(),
        RulesError::LeewayTooLarge(MAX_LEEWAY_SECS + 1)
    );
}

#[test]
fn max_token_bytes_is_bounded() {
    assert_eq!(
        rules().with_max_token_bytes(100).unwrap().max_token_bytes(),
        100
    );
    assert!(rules().with_max_token_bytes(0).is_err());
    assert!(rules().with_max_token_bytes(MAX_TOKEN_BYTES).is_ok());
    assert!(rules().with_max_token_bytes(MAX_TOKEN_BYTES + 1).is_err());
}

#[test]
fn required_claims_and_typ_refuse_empty_names() {
    assert!(rules().with_required_claims(vec!["".into()]).is_err());
    assert!(rules().with_typ(vec!["".into()]).is_err());
    assert!(rules().with_typ(vec!["application/".into()]).is_err());
}

#[test]
fn default_typ_accepts_absent_jwt_and_at_jwt() {
    let r = rules();
    assert!(r.accepts_typ(None));
    assert!(r.accepts_typ(Some("JWT")));
    assert!(r.accepts_typ(Some("jwt")));
    assert!(r.accepts_typ(Some("at+jwt")));
    assert!(r.accepts_typ(Some("application/at+JWT")));
    assert!(!r.accepts_typ(Some("JOSE")));
    assert!(!r.accepts_typ(Some("dpop+jwt")));
    assert!(!r.accepts_typ(Some("")));
}

#[test]
fn configured_typ_is_required_and_matched_loosely() {
    let r = rules().with_typ(vec!["at+jwt".into()]).unwrap();
    assert!(!r.accepts_typ(None));
    assert!(r.accepts_typ(Some("AT+JWT")));
    assert!(r.accepts_typ(Some("application/at+jwt")));
    assert!(r.accepts_typ(Some("Application/At+Jwt")));
    assert!(!r.accepts_typ(Some("JWT")));
    let r = rules()
        .with_typ(vec!["application/secevent+jwt".into()])
        .unwrap();
    assert!(r.accepts_typ(Some("secevent+jwt")));
}
