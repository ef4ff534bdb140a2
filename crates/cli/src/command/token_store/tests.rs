use std::os::unix::fs::PermissionsExt;

use super::*;

fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
    move |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| OsString::from(v))
    }
}

fn login(issuer: &str, client: &str, token: &str, updated_at: u64) -> StoredLogin {
    StoredLogin {
        issuer: issuer.to_owned(),
        client_id: client.to_owned(),
        token_endpoint: format!("{issuer}/token"),
        access_token: Secret::new(token.to_owned()),
        refresh_token: Some(Secret::new(format!("refresh-{token}"))),
        id_token: None,
        expires_at: Some(2_000_000_000),
        scope: Some("openid".to_owned()),
        resource: None,
        ca_pem: None,
        ca: None,
        updated_at,
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn config_dir_prefers_portcullis_then_xdg_then_home() {
    let all = [
        ("PORTCULLIS_CONFIG_DIR", "/p"),
        ("XDG_CONFIG_HOME", "/x"),
        ("HOME", "/h"),
    ];
    assert_eq!(config_dir(env(&all)).unwrap(), PathBuf::from("/p"));
    assert_eq!(
        config_dir(env(&all[1..])).unwrap(),
        PathBuf::from("/x/portcullis")
    );
    assert_eq!(
        config_dir(env(&all[2..])).unwrap(),
        PathBuf::from("/h/.config/portcullis")
    );
}

#[test]
fn config_dir_ignores_empty_and_relative_xdg() {
    let vars = [
        ("PORTCULLIS_CONFIG_DIR", ""),
        ("XDG_CONFIG_HOME", "relative"),
        ("HOME", "/h"),
    ];
    assert_eq!(
        config_dir(env(&vars)).unwrap(),
        PathBuf::from("/h/.config/portcullis")
    );
    assert!(matches!(config_dir(env(&[])), Err(StoreError::NoConfigDir)));
}

#[test]
fn save_creates_private_dir_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/portcullis");
    let store = TokenStore::at(dir.clone());
    store.upsert(login("https://i", "c", "t1", 1)).unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&store.path()), 0o600);
    // No temporary file left behind; the lock file stays (private, and
    // held by nobody).
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![OsString::from(STORE_FILE), OsString::from(LOCK_FILE)]
    );
    assert_eq!(mode(&dir.join(LOCK_FILE)), 0o600);
    drop(store.lock_within(Duration::ZERO).unwrap());
    let loaded = store.load().unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].access_token.expose(), "t1");
}

#[test]
fn load_without_file_is_empty() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(TokenStore::at(tmp.path().join("none"))
        .load()
        .unwrap()
        .is_empty());
}

#[test]
fn upsert_replaces_same_issuer_and_client_only() {
    let tmp = tempfile::tempdir().unwrap();
    let store = TokenStore::at(tmp.path().to_owned());
    store.upsert(login("https://i", "c", "t1", 1)).unwrap();
    store.upsert(login("https://i", "d", "t2", 2)).unwrap();
    store.upsert(login("https://i", "c", "t3", 3)).unwrap();
    let mut tokens: Vec<_> = store
        .load()
        .unwrap()
        .iter()
        .map(|l| l.access_token.expose().to_owned())
        .collect();
    tokens.sort();
    assert_eq!(tokens, ["t2", "t3"]);
}

#[test]
fn upsert_keeps_at_most_max_logins() {
    let tmp = tempfile::tempdir().unwrap();
    let store = TokenStore::at(tmp.path().to_owned());
    let many: Vec<_> = (0..MAX_LOGINS as u64)
        .map(|i| login("https://i", &format!("c{i}"), "t", i + 10))
        .collect();
    store.save(&many).unwrap();
    store.upsert(login("https://i", "new", "t", 1000)).unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded.len(), MAX_LOGINS);
    assert!(loaded.iter().any(|l| l.client_id == "new"));
    assert!(
        !loaded.iter().any(|l| l.client_id == "c0"),
        "oldest dropped"
    );
}

#[test]
fn select_picks_matching_then_most_recent() {
    let logins = vec![
        login("https://a", "c", "t1", 5),
        login("https://b", "c", "t2", 9),
        login("https://a", "d", "t3", 7),
    ];
    let pick = |i, c| select(&logins, i, c).map(|l| l.access_token.expose().to_owned());
    assert_eq!(pick(None, None).as_deref(), Some("t2"));
    assert_eq!(pick(Some("https://a"), None).as_deref(), Some("t3"));
    assert_eq!(pick(Some("https://a"), Some("c")).as_deref(), Some("t1"));
    assert_eq!(pick(Some("https://z"), None), None);
}

#[test]
fn remove_deletes_selected_logins() {
    let tmp = tempfile::tempdir().unwrap();
    let store = TokenStore::at(tmp.path().to_owned());
    store
        .save(&[
            login("https://a", "c", "t1", 1),
            login("https://b", "c", "t2", 2),
        ])
        .unwrap();
    assert_eq!(store.remove(|l| l.issuer == "https://a").unwrap(), 1);
    let left = store.load().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].issuer, "https://b");
    assert_eq!(store.remove(|_| false).unwrap(), 0);
}

#[test]
fn load_refuses_a_file_other_users_can_read() {
    let tmp = tempfile::tempdir().unwrap();
    let store = TokenStore::at(tmp.path().to_owned());
    store.save(&[login("https://a", "c", "t1", 1)]).unwrap();
    std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = store.load().unwrap_err();
    assert!(matches!(e, StoreError::Permissions { .. }), "{e}");
    assert!(e.to_string().contains("chmod 600"), "{e}");
}

#[test]
fn save_refuses_a_directory_others_can_write() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shared");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = TokenStore::at(dir.clone())
        .save(&[login("https://a", "c", "t1", 1)])
        .unwrap_err();
    assert!(matches!(e, StoreError::Permissions { .. }), "{e}");
    assert!(!dir.join(STORE_FILE).exists());
}

#[test]
fn load_refuses_a_directory_others_can_write() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cfg");
    let store = TokenStore::at(dir.clone());
    store.save(&[login("https://a", "c", "t1", 1)]).unwrap();
    assert_eq!(store.load().unwrap().len(), 1);
    for m in [0o777, 0o720, 0o702] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(m)).unwrap();
        let e = store.load().unwrap_err();
        assert!(matches!(e, StoreError::Permissions { .. }), "{m:o}: {e}");
        assert!(e.to_string().contains("chmod 700"), "{e}");
    }
    // Readable by others but not writable: the file's own mode guards it.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(store.load().unwrap().len(), 1);
    // No directory: no login, nothing to refuse.
    let none = TokenStore::at(tmp.path().join("absent"));
    assert!(none.load().unwrap().is_empty());
}

#[test]
fn corrupt_file_error_does_not_quote_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let store = TokenStore::at(tmp.path().to_owned());
    store.save(&[login("https://a", "c", "t1", 1)]).unwrap();
    let bad = r#"{"version":1,"logins":[{"issuer":"https://a","client_id":"c","token_endpoint":"x","access_token":"SECRET-AT","updated_at":"SECRET-2"}]}"#;
    std::fs::write(store.path(), bad).unwrap();
    let e = store.load().unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
    assert!(!e.to_string().contains("SECRET"), "{e}");
}

#[test]
fn too_large_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = TokenStore::at(tmp.path().to_owned());
    store.save(&[]).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(store.path())
        .unwrap();
    f.set_len(MAX_STORE_BYTES + 1).unwrap();
    assert!(matches!(store.load(), Err(StoreError::TooLarge { .. })));
}

#[test]
fn unknown_version_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = TokenStore::at(tmp.path().to_owned());
    store.save(&[]).unwrap();
    std::fs::write(store.path(), r#"{"version":99,"logins":[]}"#).unwrap();
    assert!(matches!(
        store.load(),
        Err(StoreError::Version { found: 99, .. })
    ));
}

#[test]
fn lock_is_exclusive_and_released_on_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let store = TokenStore::at(tmp.path().to_owned());
    let held = store.lock().unwrap();
    let e = store.lock_within(Duration::from_millis(100)).unwrap_err();
    assert!(matches!(e, StoreError::Locked { .. }), "{e}");
    drop(held);
    assert!(store.lock_within(Duration::from_millis(100)).is_ok());
}

#[test]
fn secrets_are_redacted_in_debug() {
    let l = login("https://a", "c", "SECRET-AT", 1);
    let debug = format!("{l:?}");
    assert!(!debug.contains("SECRET"), "{debug}");
    assert!(debug.contains("redacted"), "{debug}");
}

// ------------------------------------------------------------- locks

#[test]
fn a_lock_names_its_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let store = TokenStore::at(tmp.path().to_owned());
    let held = store.lock().unwrap();
    let text = std::fs::read_to_string(tmp.path().join(LOCK_FILE)).unwrap();
    assert_eq!(text, format!("{}\n", std::process::id()));
    let e = store.lock_within(Duration::from_millis(100)).unwrap_err();
    assert!(
        matches!(e, StoreError::Locked { holder: Some(p), .. } if p == std::process::id()),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("(pid {})", std::process::id())),
        "{msg}"
    );
    assert!(msg.contains(LOCK_FILE), "{msg}");
    drop(held);
}

#[test]
fn a_lock_file_left_behind_holds_nothing() {
    // The file of a holder that ended, whatever it says, is no lock: the
    // lock is the flock, which ended with its holder.
    let tmp = tempfile::tempdir().unwrap();
    let store = TokenStore::at(tmp.path().to_owned());
    drop(store.lock().unwrap());
    let path = tmp.path().join(LOCK_FILE);
    for text in ["4242\n", "", "not a pid\n"] {
        std::fs::write(&path, text).unwrap();
        let held = store.lock_within(Duration::from_millis(100)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        drop(held);
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_lock_held_by_another_process_is_waited_for_and_freed_when_it_dies() {
    use std::process::{Command, Stdio};
    let tmp = tempfile::tempdir().unwrap();
    let store = TokenStore::at(tmp.path().to_owned());
    drop(store.lock().unwrap());
    let path = tmp.path().join(LOCK_FILE);
    // util-linux flock(1) takes the same flock(2) lock, then sleeps.
    let mut other = Command::new("flock")
        // Without a fork: the process killed below is the one that holds
        // the lock (a forked `sleep` would inherit it).
        .arg("--no-fork")
        .arg(&path)
        .args(["sleep", "60"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        match store.lock_within(Duration::ZERO) {
            Err(StoreError::Locked { .. }) => break,
            Ok(l) => drop(l),
            Err(e) => panic!("{e}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "flock(1) never locked"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The holder is killed: no cleanup of its, and no stale-lock guess of
    // ours, is needed to go on.
    other.kill().unwrap();
    other.wait().unwrap();
    let held = store.lock_within(Duration::from_secs(5)).unwrap();
    drop(held);
}

#[test]
fn check_writable_takes_and_releases_the_lock_and_reads_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cfg");
    let store = TokenStore::at(dir.clone()).with_lock_wait(Duration::from_millis(100));
    store.check_writable().unwrap();
    // Released: the lock can be taken at once.
    drop(store.lock_within(Duration::ZERO).unwrap());
    let held = store.lock().unwrap();
    let e = store.check_writable().unwrap_err();
    assert!(matches!(e, StoreError::Locked { .. }), "{e}");
    drop(held);
    std::fs::write(store.path(), "{").unwrap();
    std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = store.check_writable().unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
    drop(store.lock_within(Duration::ZERO).unwrap());
}

// ----------------------------------------------------------- formats

#[test]
fn a_version_1_store_with_a_ca_path_is_read_and_saved_as_version_2() {
    let tmp = tempfile::tempdir().unwrap();
    let store = TokenStore::at(tmp.path().to_owned());
    store.save(&[]).unwrap();
    let v1 = r#"{"version":1,"logins":[{"issuer":"https://a","client_id":"c","token_endpoint":"https://a/token","access_token":"t1","ca":"/etc/portcullis/ca.pem","updated_at":1}]}"#;
    std::fs::write(store.path(), v1).unwrap();
    let logins = store.load().unwrap();
    assert_eq!(
        logins[0].ca.as_deref(),
        Some(Path::new("/etc/portcullis/ca.pem"))
    );
    assert!(logins[0].ca_pem.is_none());
    store.save(&logins).unwrap();
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.path()).unwrap()).unwrap();
    assert_eq!(saved["version"], 2);
    assert_eq!(saved["logins"][0]["ca"], "/etc/portcullis/ca.pem");
    assert!(saved["logins"][0].get("ca_pem").is_none());
}

#[test]
fn upsert_drops_least_recently_used_logins_to_keep_the_file_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let store = TokenStore::at(tmp.path().to_owned());
    let big = |client: &str, updated_at| {
        let mut l = login("https://i", client, "t", updated_at);
        l.ca_pem = Some("x".repeat(300 * 1024));
        l
    };
    for (i, c) in ["a", "b", "c", "d"].into_iter().enumerate() {
        store.upsert(big(c, 10 + i as u64)).unwrap();
    }
    // Three fit under the limit; the oldest, `a`, was dropped.
    let mut kept: Vec<_> = store
        .load()
        .unwrap()
        .into_iter()
        .map(|l| l.client_id)
        .collect();
    kept.sort();
    assert_eq!(kept, ["b", "c", "d"]);
    assert!(std::fs::metadata(store.path()).unwrap().len() <= MAX_STORE_BYTES);
    // The login being stored is kept even when older than the others.
    store.upsert(big("e", 1)).unwrap();
    assert!(store.load().unwrap().iter().any(|l| l.client_id == "e"));
    // One login too large on its own is refused, the file left as it was.
    let mut huge = login("https://i", "f", "t", 99);
    huge.ca_pem = Some("x".repeat(MAX_STORE_BYTES as usize));
    let before = std::fs::read(store.path()).unwrap();
    let e = store.upsert(huge).unwrap_err();
    assert!(matches!(e, StoreError::WouldBeTooLarge { .. }), "{e}");
    assert_eq!(std::fs::read(store.path()).unwrap(), before);
}
