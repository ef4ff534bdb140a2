use super::*;
use crate::test_util::{cert, ip, spiffe, ts};

fn window(days: &[&str], span: Option<(&str, &str)>, tz: &str) -> TimeWindow {
    TimeWindow {
        days: days
            .iter()
            .map(|d| parse_day(d).unwrap())
            .fold(0, |a, b| a | b),
        span: span.map(|(f, t)| (parse_hhmm(f, false).unwrap(), parse_hhmm(t, true).unwrap())),
        tz: TimeZone::get(tz).unwrap(),
        tz_name: tz.into(),
    }
}

const WEEKDAYS: [&str; 5] = ["mon", "tue", "wed", "thu", "fri"];

#[test]
fn hhmm_parsing() {
    assert_eq!(parse_hhmm("00:00", false), Some(0));
    assert_eq!(parse_hhmm("08:30", false), Some(510));
    assert_eq!(parse_hhmm("23:59", false), Some(1439));
    assert_eq!(parse_hhmm("24:00", true), Some(1440));
    for bad in [
        "24:00", "8:00", "08:0", "08:60", "-1:00", "0800", "08:00:00", "ab:cd", "", "+8:00",
    ] {
        assert_eq!(parse_hhmm(bad, false), None, "{bad:?}");
    }
    assert_eq!(parse_hhmm("24:01", true), None);
}

#[test]
fn day_parsing() {
    assert_eq!(parse_day("mon"), Some(1));
    assert_eq!(parse_day("sun"), Some(64));
    for bad in ["Mon", "monday", "", "mo"] {
        assert_eq!(parse_day(bad), None);
    }
}

#[test]
fn cidr_parsing() {
    assert_eq!(parse_cidr("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
    assert_eq!(parse_cidr("192.0.2.7").unwrap().to_string(), "192.0.2.7/32");
    assert_eq!(
        parse_cidr("2001:db8::1").unwrap().to_string(),
        "2001:db8::1/128"
    );
    assert!(parse_cidr("10.0.0.1/8").is_err());
    assert!(parse_cidr("10.0.0.0/40").is_err());
    assert!(parse_cidr("10.0.0").is_err());
}

#[test]
fn daytime_window_is_from_inclusive_to_exclusive() {
    let w = window(&WEEKDAYS, Some(("08:00", "18:00")), "UTC");
    assert!(!w.contains(ts("2026-12-04T07:59:59Z")));
    assert!(w.contains(ts("2026-12-04T08:00:00Z")));
    assert!(w.contains(ts("2026-12-04T17:59:59Z")));
    assert!(!w.contains(ts("2026-12-04T18:00:00Z")));
    // Saturday.
    assert!(!w.contains(ts("2026-12-05T10:00:00Z")));
}

#[test]
fn window_to_end_of_day() {
    let w = window(&["fri"], Some(("20:00", "24:00")), "UTC");
    assert!(w.contains(ts("2026-12-04T23:59:59Z")));
    assert!(!w.contains(ts("2026-12-05T00:00:00Z")));
}

#[test]
fn overnight_window_belongs_to_the_day_it_starts() {
    // Friday 22:00 to Saturday 06:00.
    let w = window(&["fri"], Some(("22:00", "06:00")), "UTC");
    assert!(!w.contains(ts("2026-12-04T21:59:00Z"))); // fri
    assert!(w.contains(ts("2026-12-04T22:00:00Z"))); // fri
    assert!(w.contains(ts("2026-12-05T03:00:00Z"))); // sat, started fri
    assert!(!w.contains(ts("2026-12-05T06:00:00Z"))); // sat, ended
    assert!(!w.contains(ts("2026-12-05T23:00:00Z"))); // sat evening: not listed
    assert!(!w.contains(ts("2026-12-04T03:00:00Z"))); // fri morning: thu not listed
}

#[test]
fn days_without_hours_cover_whole_days() {
    let w = window(&["sat", "sun"], None, "UTC");
    assert!(w.contains(ts("2026-12-05T00:00:00Z")));
    assert!(w.contains(ts("2026-12-06T23:59:59Z")));
    assert!(!w.contains(ts("2026-12-04T23:59:59Z")));
}

#[test]
fn window_follows_dst_in_its_zone() {
    let w = window(&WEEKDAYS, Some(("08:00", "18:00")), "Europe/Berlin");
    // Winter (CET, UTC+1): 08:00 local = 07:00Z.
    assert!(!w.contains(ts("2026-12-04T06:59:00Z")));
    assert!(w.contains(ts("2026-12-04T07:00:00Z")));
    assert!(!w.contains(ts("2026-12-04T17:00:00Z")));
    // Summer (CEST, UTC+2): 08:00 local = 06:00Z; 2026-07-01 is a Wednesday.
    assert!(w.contains(ts("2026-07-01T06:00:00Z")));
    assert!(!w.contains(ts("2026-07-01T05:59:00Z")));
    assert!(!w.contains(ts("2026-07-01T16:00:00Z")));
}

#[test]
fn window_across_the_dst_switch() {
    // 2026-03-29 (Sunday) Berlin skips 02:00-03:00; 01:00Z = 03:00 CEST.
    let w = window(&["sun"], Some(("02:30", "03:30")), "Europe/Berlin");
    assert!(!w.contains(ts("2026-03-29T00:59:00Z"))); // 01:59 CET
    assert!(w.contains(ts("2026-03-29T01:00:00Z"))); // 03:00 CEST
    assert!(!w.contains(ts("2026-03-29T01:30:00Z"))); // 03:30 CEST
                                                      // 2026-10-25 (Sunday) 02:00-03:00 happens twice; both are inside.
    let w = window(&["sun"], Some(("02:00", "03:00")), "Europe/Berlin");
    assert!(w.contains(ts("2026-10-25T00:30:00Z"))); // 02:30 CEST
    assert!(w.contains(ts("2026-10-25T01:30:00Z"))); // 02:30 CET
    assert!(!w.contains(ts("2026-10-25T02:00:00Z"))); // 03:00 CET
}

#[test]
fn weekday_is_taken_in_the_zone_not_utc() {
    // Thursday 12:00Z is Friday 01:00 in Auckland (NZDT, UTC+13).
    let fri_auckland = window(&["fri"], None, "Pacific/Auckland");
    assert!(fri_auckland.contains(ts("2026-12-03T12:00:00Z")));
    let fri_utc = window(&["fri"], None, "UTC");
    assert!(!fri_utc.contains(ts("2026-12-03T12:00:00Z")));
    // Friday 23:00Z is still Friday 15:00 in Los Angeles, Saturday in Berlin.
    let fri_la = window(&["fri"], None, "America/Los_Angeles");
    assert!(fri_la.contains(ts("2026-12-04T23:00:00Z")));
    let fri_berlin = window(&["fri"], None, "Europe/Berlin");
    assert!(!fri_berlin.contains(ts("2026-12-04T23:00:00Z")));
}

fn seg(path: &str) -> PathSegments<'_> {
    crate::pattern::split_request_path(path).unwrap()
}

fn cx<'a>(principal: &'a Principal, ip_s: &str, segments: &'a PathSegments<'a>) -> Context<'a> {
    Context {
        principal,
        ip: ip(ip_s).to_canonical(),
        now: ts("2026-12-04T10:00:00Z"),
        segments,
        roles: &[],
    }
}

fn cidrs(list: &[&str]) -> Conditions {
    Conditions {
        source_ip: Some(list.iter().map(|s| parse_cidr(s).unwrap()).collect()),
        ..Conditions::default()
    }
}

#[test]
fn source_ip_v4_and_v6() {
    let c = cidrs(&["10.0.0.0/8", "2001:db8::/32"]);
    let p = Principal::anonymous();
    assert_eq!(c.check(&cx(&p, "10.200.0.1", &seg("/")), false), Ok(()));
    assert_eq!(
        c.check(&cx(&p, "11.0.0.1", &seg("/")), false),
        Err(Which::SourceIp)
    );
    assert_eq!(c.check(&cx(&p, "2001:db8:1::5", &seg("/")), false), Ok(()));
    assert_eq!(
        c.check(&cx(&p, "2001:db9::5", &seg("/")), false),
        Err(Which::SourceIp)
    );
    // Deny rules do not treat a definite mismatch as unknown.
    assert_eq!(
        c.check(&cx(&p, "11.0.0.1", &seg("/")), true),
        Err(Which::SourceIp)
    );
}

#[test]
fn ipv4_mapped_addresses_match_ipv4_networks() {
    let c = cidrs(&["10.0.0.0/8"]);
    let p = Principal::anonymous();
    assert_eq!(
        c.check(&cx(&p, "::ffff:10.1.2.3", &seg("/")), false),
        Ok(())
    );
    assert_eq!(
        c.check(&cx(&p, "::ffff:11.1.2.3", &seg("/")), false),
        Err(Which::SourceIp)
    );
}

#[test]
fn ipv4_mapped_networks_are_the_ipv4_networks_they_cover() {
    assert_eq!(
        parse_cidr("::ffff:10.0.0.0/104").unwrap().to_string(),
        "10.0.0.0/8"
    );
    assert_eq!(
        parse_cidr("::ffff:127.0.0.1").unwrap().to_string(),
        "127.0.0.1/32"
    );
    // Wider than the mapped range: kept as written.
    assert_eq!(parse_cidr("::/0").unwrap().to_string(), "::/0");
    let c = cidrs(&["::ffff:10.0.0.0/104"]);
    let p = Principal::anonymous();
    for inside in ["10.1.2.3", "::ffff:10.1.2.3"] {
        assert_eq!(
            c.check(&cx(&p, inside, &seg("/")), false),
            Ok(()),
            "{inside}"
        );
    }
    assert_eq!(
        c.check(&cx(&p, "11.1.2.3", &seg("/")), false),
        Err(Which::SourceIp)
    );
}

fn equal(param: &str, segment: usize, attr: &str) -> Conditions {
    Conditions {
        equal: vec![Equal {
            param: Name::new(param),
            segment,
            attr: AttributeRef::parse(attr).unwrap(),
        }]
        .into(),
        ..Conditions::default()
    }
}

#[test]
fn equal_compares_the_parameter_with_the_attribute() {
    let c = equal("tenant", 1, "spiffe.segment[1]");
    let p = spiffe("spiffe://example.org/ns/acme/sa/web");
    assert_eq!(c.check(&cx(&p, "10.0.0.1", &seg("/t/acme")), false), Ok(()));
    assert_eq!(
        c.check(&cx(&p, "10.0.0.1", &seg("/t/other")), false),
        Err(Which::Equal(0))
    );
    assert_eq!(
        c.check(&cx(&p, "10.0.0.1", &seg("/t/ACME")), false),
        Err(Which::Equal(0))
    );
    // A definite mismatch is not met for deny rules either.
    assert_eq!(
        c.check(&cx(&p, "10.0.0.1", &seg("/t/other")), true),
        Err(Which::Equal(0))
    );
    let d = c.describe(Which::Equal(0), &cx(&p, "10.0.0.1", &seg("/t/other")));
    assert_eq!(
        d,
        "path parameter `tenant` is `other` but `spiffe.segment[1]` is `acme`"
    );
}

#[test]
fn missing_attribute_fails_allow_and_satisfies_deny() {
    let c = equal("tenant", 1, "spiffe.segment[5]");
    let p = spiffe("spiffe://example.org/ns/acme");
    let anon = Principal::anonymous();
    let no_spiffe = cert(None, "CN=x", "CN=ca");
    let path = seg("/t/acme");
    for who in [&p, &anon, &no_spiffe] {
        let cx = cx(who, "10.0.0.1", &path);
        assert_eq!(
            c.check(&cx, false),
            Err(Which::Equal(0)),
            "allow must fail closed"
        );
        assert_eq!(c.check(&cx, true), Ok(()), "deny must apply");
    }
    let d = c.describe(Which::Equal(0), &cx(&p, "10.0.0.1", &seg("/t/acme")));
    assert!(
        d.starts_with("the principal has no attribute `spiffe.segment[5]`"),
        "{d}"
    );
}

#[test]
fn all_conditions_must_hold() {
    let mut c = cidrs(&["10.0.0.0/8"]);
    c.time = Some(window(&["sat"], None, "UTC"));
    let p = Principal::anonymous();
    assert_eq!(
        c.check(&cx(&p, "10.0.0.1", &seg("/")), false),
        Err(Which::Time)
    );
    c.time = Some(window(&["fri"], None, "UTC"));
    assert_eq!(c.check(&cx(&p, "10.0.0.1", &seg("/")), false), Ok(()));
    assert_eq!(c.names(), ["when.source_ip", "when.time"]);
}

#[test]
fn describe_time_shows_local_time() {
    let c = Conditions {
        time: Some(window(&["sat"], None, "Europe/Berlin")),
        ..Conditions::default()
    };
    let p = Principal::anonymous();
    assert_eq!(
        c.describe(Which::Time, &cx(&p, "10.0.0.1", &seg("/"))),
        "local time fri 11:00 in `Europe/Berlin` is outside the window"
    );
}

#[test]
fn a_path_parameter_is_compared_decoded() {
    assert!(decoded_eq("Acme%20Corp", "Acme Corp"));
    assert!(decoded_eq("caf%C3%A9", "café"));
    assert!(decoded_eq("acme", "acme"));
    assert!(!decoded_eq("Acme%20Corp", "Acme%20Corp"));
    assert!(!decoded_eq("Acme%20Corp", "Acme Corpx"));
    assert!(!decoded_eq("Acme%20Cor", "Acme Corp"));
    assert!(!decoded_eq("acme%2", "acme%2"));
    assert!(!decoded_eq("ACME", "acme"), "case is kept");
}
