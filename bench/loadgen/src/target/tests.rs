use super::*;

#[test]
fn accepts_loopback_https_with_port_and_path() {
    let t = parse_target("https://127.0.0.1:8443/api/bench?x=1", "localhost").unwrap();
    assert_eq!(t.addr, "127.0.0.1:8443".parse::<SocketAddr>().unwrap());
    assert_eq!(t.path_and_query, "/api/bench?x=1");
    assert_eq!(t.host_header, "localhost:8443");
    assert_eq!(t.server_name.to_str(), "localhost");
}

#[test]
fn defaults_path_and_port() {
    let t = parse_target("https://127.0.0.1", "localhost").unwrap();
    assert_eq!(t.addr.port(), DEFAULT_PORT);
    assert_eq!(t.path_and_query, "/");
}

fn refused(url: &str) -> String {
    match parse_target(url, "localhost") {
        Err(LoadgenError::Target { reason, .. }) => reason.to_owned(),
        other => panic!("`{url}` should be refused, got {other:?}"),
    }
}

#[test]
fn refuses_other_hosts() {
    for url in [
        "https://10.0.0.1:443/",
        "https://192.168.1.1/",
        "https://127.0.0.2:443/",
        "https://0.0.0.0:443/",
        "https://[::1]:443/",
        "https://localhost:443/",
        "https://example.com/",
    ] {
        assert_eq!(refused(url), "host must be the address 127.0.0.1", "{url}");
    }
}

#[test]
fn refuses_plain_http_and_relative_urls() {
    assert_eq!(refused("http://127.0.0.1:80/"), "scheme must be `https`");
    assert_eq!(refused("/just/a/path"), "scheme must be `https`");
}

#[test]
fn refuses_userinfo_that_could_hide_the_host() {
    assert_eq!(
        refused("https://10.0.0.1@127.0.0.1:443/"),
        "user information is not allowed"
    );
}

#[test]
fn refuses_port_zero() {
    assert_eq!(refused("https://127.0.0.1:0/"), "port 0 is not a port");
}

#[test]
fn refuses_invalid_server_name() {
    assert!(matches!(
        parse_target("https://127.0.0.1:8443/", "bad name"),
        Err(LoadgenError::ServerName(_))
    ));
}
