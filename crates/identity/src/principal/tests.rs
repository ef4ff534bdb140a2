use super::*;

fn cert() -> CertIdentity {
    CertIdentity {
        spiffe_id: Some(SpiffeId::parse("spiffe://example.org/tenant/acme/svc/api").unwrap()),
        subject: "CN=api,OU=payments,O=Acme".into(),
        issuer: "CN=Dev Intermediate CA".into(),
        subject_attrs: vec![
            ("CN".into(), "api".into()),
            ("OU".into(), "payments".into()),
            ("O".into(), "Acme".into()),
        ],
        dns_sans: vec![],
        email_sans: vec![],
        thumbprint: Thumbprint([7; 32]),
    }
}

#[test]
fn attributes_resolve() {
    let p = Principal::from_cert(cert());
    let a = |s| {
        p.attribute(&AttributeRef::parse(s).unwrap())
            .map(str::to_owned)
    };
    assert_eq!(a("spiffe.trust_domain").as_deref(), Some("example.org"));
    assert_eq!(a("spiffe.segment[1]").as_deref(), Some("acme"));
    assert_eq!(a("spiffe.segment[9]"), None);
    assert_eq!(a("cert.subject.ou").as_deref(), Some("payments"));
    assert_eq!(a("cert.subject.L"), None);
    assert_eq!(
        a("spiffe.id").as_deref(),
        Some("spiffe://example.org/tenant/acme/svc/api")
    );
    assert_eq!(
        Principal::anonymous().attribute(&AttributeRef::CertSubject),
        None
    );
    assert_eq!(p.display_name(), "spiffe://example.org/tenant/acme/svc/api");
}

#[test]
fn attribute_syntax() {
    for s in [
        "spiffe.id",
        "spiffe.segment[0]",
        "cert.subject.CN",
        "cert.issuer",
    ] {
        assert_eq!(AttributeRef::parse(s).unwrap().to_string(), s);
    }
    for s in [
        "",
        "spiffe",
        "spiffe.segment[x]",
        "cert.subject.",
        "claims.sub",
        "cert.subject.C N",
    ] {
        assert!(AttributeRef::parse(s).is_err(), "{s}");
    }
}

#[test]
fn thumbprint_hex_roundtrip() {
    let t = Thumbprint([0xab; 32]);
    assert_eq!(Thumbprint::from_hex(&t.to_hex()), Some(t));
    assert_eq!(Thumbprint::from_hex(&t.to_hex().to_uppercase()), Some(t));
    assert_eq!(Thumbprint::from_hex("abc"), None);
    assert_eq!(Thumbprint::from_hex(&"zz".repeat(32)), None);
}
