use super::*;

#[test]
fn names_round_trip() {
    for alg in Alg::ALL {
        assert_eq!(Alg::from_name(alg.name()), Some(alg));
        assert_eq!(alg.to_string(), alg.name());
        assert_eq!(alg.name().parse::<Alg>(), Ok(alg));
    }
    assert_eq!(Alg::EdDsa.name(), "EdDSA");
}

#[test]
fn symmetric_and_none_have_no_algorithm() {
    for name in [
        "none", "None", "NONE", "HS256", "HS384", "HS512", "", "ES512", "EdDSA ",
    ] {
        assert_eq!(Alg::from_name(name), None, "{name}");
    }
}

#[test]
fn names_are_case_sensitive() {
    assert_eq!(Alg::from_name("es256"), None);
    assert_eq!(Alg::from_name("EDDSA"), None);
}

#[test]
fn from_str_error_names_the_value() {
    let err = "HS256".parse::<Alg>().unwrap_err();
    assert_eq!(err.to_string(), "unsupported algorithm `HS256`");
}

#[test]
fn from_str_error_truncates_and_escapes() {
    let long = format!("{}\n", "A".repeat(100));
    let msg = long.parse::<Alg>().unwrap_err().to_string();
    assert!(!msg.contains('\n'));
    assert!(msg.len() < 80, "{msg}");
}

#[test]
fn serde_by_name() {
    let algs: Vec<Alg> = serde_json::from_str(r#"["ES256","PS512","EdDSA"]"#).unwrap();
    assert_eq!(algs, vec![Alg::Es256, Alg::Ps512, Alg::EdDsa]);
    assert_eq!(serde_json::to_string(&Alg::Rs384).unwrap(), r#""RS384""#);
    let err = serde_json::from_str::<Alg>(r#""HS256""#).unwrap_err();
    assert!(err.to_string().contains("unsupported algorithm `HS256`"));
    assert!(serde_json::from_str::<Alg>("1").is_err());
}

#[test]
fn families() {
    assert_eq!(Alg::Es256.family(), KeyFamily::EcP256);
    assert_eq!(Alg::Es384.family(), KeyFamily::EcP384);
    assert_eq!(Alg::EdDsa.family(), KeyFamily::Ed25519);
    for alg in Alg::RSA {
        assert_eq!(alg.family(), KeyFamily::Rsa);
        assert!(alg.rsa_parameters().is_some());
    }
    assert!(Alg::Es256.rsa_parameters().is_none());
    assert_eq!(Alg::Es256.ecdsa_signature_len(), Some(64));
    assert_eq!(Alg::Es384.ecdsa_signature_len(), Some(96));
    assert_eq!(Alg::Rs256.ecdsa_signature_len(), None);
}
