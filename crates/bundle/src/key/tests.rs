use super::*;

const ALGS: [SigAlg; 2] = [SigAlg::EcdsaP256, SigAlg::Ed25519];

#[test]
fn generated_keys_sign_and_verify() {
    for alg in ALGS {
        let key = SigningKey::generate(alg).unwrap();
        assert_eq!(key.alg(), alg);
        let public = PublicKey::from_spki_pem(alg, &key.public_key_pem()).unwrap();
        let sig = key.sign(b"manifest").unwrap();
        assert!(public.verify(b"manifest", &sig), "{alg}");
        assert!(!public.verify(b"manifesT", &sig), "{alg}: other message");
        let mut flipped = sig.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(!public.verify(b"manifest", &flipped), "{alg}: flipped bit");
    }
}

#[test]
fn signature_forms() {
    let ed = SigningKey::generate(SigAlg::Ed25519).unwrap();
    assert_eq!(ed.sign(b"m").unwrap().len(), 64);
    let ec = SigningKey::generate(SigAlg::EcdsaP256).unwrap();
    let der = ec.sign(b"m").unwrap();
    assert_eq!(
        der.first(),
        Some(&0x30),
        "ecdsa signatures are der sequences"
    );
    assert!(der.len() <= 72);
}

#[test]
fn pkcs8_pem_round_trips() {
    for alg in ALGS {
        let key = SigningKey::generate(alg).unwrap();
        let pem_text = key.to_pkcs8_pem();
        assert!(pem_text.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let again = SigningKey::from_pkcs8_pem(&pem_text).unwrap();
        assert_eq!(again.alg(), alg);
        assert_eq!(again.public_key_pem(), key.public_key_pem());
    }
}

#[test]
fn a_key_of_one_algorithm_does_not_verify_for_the_other() {
    let ec = SigningKey::generate(SigAlg::EcdsaP256).unwrap();
    let ed = SigningKey::generate(SigAlg::Ed25519).unwrap();
    assert!(PublicKey::from_spki_pem(SigAlg::Ed25519, &ec.public_key_pem()).is_err());
    assert!(PublicKey::from_spki_pem(SigAlg::EcdsaP256, &ed.public_key_pem()).is_err());
}

#[test]
fn private_keys_are_refused_as_public_keys() {
    let ec = SigningKey::generate(SigAlg::EcdsaP256).unwrap();
    assert!(PublicKey::from_spki_pem(SigAlg::EcdsaP256, &ec.to_pkcs8_pem()).is_err());
}

#[test]
fn unusable_private_keys_are_refused() {
    let public = SigningKey::generate(SigAlg::EcdsaP256)
        .unwrap()
        .public_key_pem();
    for text in [
        String::new(),
        public,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
            .to_owned(),
        pem::encode("PRIVATE KEY", b"not der").to_string(),
        pem::encode("EC PRIVATE KEY", b"not der").to_string(),
    ] {
        let err = SigningKey::from_pkcs8_pem(&text).unwrap_err();
        assert_eq!(err.reason(), "key_rejected", "{text}");
    }
}

#[test]
fn debug_is_redacted() {
    let key = SigningKey::generate(SigAlg::Ed25519).unwrap();
    let debug = format!("{key:?}");
    let pem_text = key.to_pkcs8_pem();
    let body = pem_text.lines().nth(1).unwrap();
    assert!(debug.contains("<redacted>"));
    assert!(!debug.contains(body));
}
