use super::*;

#[test]
fn names_round_trip() {
    for alg in [SigAlg::EcdsaP256, SigAlg::Ed25519] {
        assert_eq!(alg.to_string().parse::<SigAlg>().unwrap(), alg);
    }
    assert_eq!(SigAlg::EcdsaP256.to_string(), "ecdsa-p256");
    assert_eq!(SigAlg::Ed25519.to_string(), "ed25519");
}

#[test]
fn other_names_are_refused() {
    for name in ["ES256", "ECDSA-P256", "rsa", "", "ed448", "ed25519 "] {
        let err = name.parse::<SigAlg>().unwrap_err();
        assert_eq!(err.reason(), "unknown_algorithm", "{name}");
    }
}
