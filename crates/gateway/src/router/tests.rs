use super::*;
use std::time::Duration;

fn route(name: &str, host: Option<&str>, prefix: &str, methods: &[&str]) -> Route {
    Route {
        name: name.into(),
        host: host.map(Into::into),
        path_prefix: prefix.into(),
        methods: methods.iter().map(|m| m.parse().unwrap()).collect(),
        pass_bearer_token: false,
        browser_login: false,
        client_headers: None,
        upstream: portcullis_config::Upstream {
            scheme: http::uri::Scheme::HTTP,
            authority: "127.0.0.1:1".parse().unwrap(),
            ca: None,
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
        },
    }
}

#[test]
fn longest_prefix_host_and_method() {
    let routes = vec![
        route("root", None, "/", &[]),
        route("api", None, "/api", &[]),
        route("api-write", None, "/api", &["POST"]),
        route("v2", None, "/api/v2", &[]),
        route("admin-host", Some("admin.example"), "/api", &[]),
    ];
    let t = RouteTable::new(&routes);
    let get = http::Method::GET;
    let name = |id: Option<RouteId>| id.map(|i| routes[i].name.as_str());
    assert_eq!(name(t.find("x", "/api/things", &get)), Some("api"));
    assert_eq!(name(t.find("x", "/api", &get)), Some("api"));
    assert_eq!(
        name(t.find("x", "/api/things", &http::Method::POST)),
        Some("api-write")
    );
    assert_eq!(name(t.find("x", "/api/v2/x", &get)), Some("v2"));
    assert_eq!(
        name(t.find("x", "/apiv2", &get)),
        Some("root"),
        "prefixes are segment aligned"
    );
    assert_eq!(name(t.find("x", "/", &get)), Some("root"));
    assert_eq!(
        name(t.find("admin.example", "/api/v2/x", &get)),
        Some("admin-host")
    );
    assert_eq!(name(t.find("admin.example", "/other", &get)), Some("root"));
}

#[test]
fn unknown_route_is_none() {
    let routes = vec![route("api", None, "/api", &["GET"])];
    let t = RouteTable::new(&routes);
    assert_eq!(t.find("x", "/", &http::Method::GET), None);
    assert_eq!(t.find("x", "/apix", &http::Method::GET), None);
    assert_eq!(t.find("x", "/api/x", &http::Method::DELETE), None);
    assert_eq!(t.find("x", "/api/", &http::Method::GET), Some(0));
}
