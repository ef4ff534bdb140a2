use std::path::PathBuf;

use super::*;

fn watched(files: &[&std::path::Path]) -> Watched {
    Watched {
        files: files.iter().map(|p| p.to_path_buf()).collect(),
    }
}

#[test]
fn a_change_is_applied_once_it_held_for_one_poll() {
    let mut s = WatchState::default();
    s.reloaded([0; 32]);
    assert!(!s.poll([0; 32]), "nothing changed");
    // Half written, then complete: neither is loaded while it moves.
    assert!(!s.poll([1; 32]));
    assert!(!s.poll([2; 32]));
    assert!(s.poll([2; 32]), "unchanged for one poll: reload");
    s.reloaded([2; 32]);
    assert!(!s.poll([2; 32]));
    // A change that is undone before it settles is no change.
    assert!(!s.poll([3; 32]));
    assert!(!s.poll([2; 32]));
    assert!(!s.poll([2; 32]));
}

#[test]
fn a_change_written_while_a_reload_ran_is_loaded_next() {
    let mut s = WatchState::default();
    s.reloaded([0; 32]);
    assert!(!s.poll([1; 32]));
    assert!(s.poll([1; 32]));
    // The reload read the files as hashed before it: [1]. While it ran,
    // a second write made them [2]; remembering [1], not what is there
    // after the reload, the second write is seen.
    s.reloaded([1; 32]);
    assert!(!s.poll([2; 32]));
    assert!(s.poll([2; 32]), "the later write is loaded");
}

#[test]
fn missing_and_odd_files_change_the_hash_and_never_block() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.yaml");
    let b = dir.path().join("b.pem");
    std::fs::write(&a, "a: 1\n").unwrap();
    std::fs::write(&b, "cert").unwrap();
    let w = watched(&[&a, &b]);
    let both = fingerprint(&w);
    assert_eq!(fingerprint(&w), both, "stable");
    std::fs::remove_file(&b).unwrap();
    let gone = fingerprint(&w);
    assert_ne!(gone, both, "a file that disappears is a change");
    // A FIFO in a watched path: hashed as such, without opening it (an
    // open would wait for a writer forever).
    let status = std::process::Command::new("mkfifo")
        .arg(&b)
        .status()
        .unwrap();
    assert!(status.success());
    let fifo = fingerprint(&w);
    assert_ne!(fifo, gone);
    assert_ne!(fifo, both);
    std::fs::remove_file(&b).unwrap();
    std::fs::write(&b, "cert").unwrap();
    assert_eq!(fingerprint(&w), both, "back as it was");
    // The same bytes under another path are other files.
    let c: PathBuf = dir.path().join("c.pem");
    std::fs::write(&c, "cert").unwrap();
    assert_ne!(fingerprint(&watched(&[&a, &c])), both);
}

/// A loader for [`load_at_start`] tests: "loads" the policy file's text,
/// and names the files the configuration file lists, one per line.
fn names_in(config: &std::path::Path) -> Watched {
    let text = std::fs::read_to_string(config).unwrap();
    let mut files = vec![config.to_path_buf()];
    files.extend(text.lines().map(PathBuf::from));
    Watched { files }
}

#[test]
fn a_policy_written_while_the_gateway_starts_is_not_taken_for_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let policy = dir.path().join("policy");
    std::fs::write(&config, format!("{}\n", policy.display())).unwrap();
    std::fs::write(&policy, "deny nothing").unwrap();
    // The load reads the policy; just after it did, an operator writes a
    // new one (the window between loading and watching).
    let (loaded, digest) = load_at_start(
        || Some(names_in(&config)),
        || {
            let text = std::fs::read_to_string(&policy);
            std::fs::write(&policy, "deny /admin").unwrap();
            text
        },
        |_| names_in(&config),
    )
    .unwrap();
    assert_eq!(loaded, "deny nothing");
    let digest = digest.expect("the configuration named the same files throughout");
    // The watcher starts from the files as they were before the load:
    // the new policy is a change it loads.
    let mut state = WatchState::default();
    state.reloaded(digest);
    let now = fingerprint(&names_in(&config));
    assert!(!state.poll(now), "held for one poll first");
    assert!(
        state.poll(now),
        "the policy written during the start is loaded"
    );
}

#[test]
fn a_configuration_that_names_other_files_during_the_start_is_loaded_again() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let (a, b) = (dir.path().join("a.pem"), dir.path().join("b.pem"));
    std::fs::write(&a, "a").unwrap();
    std::fs::write(&b, "b").unwrap();
    std::fs::write(&config, format!("{}\n", a.display())).unwrap();
    let mut loads = 0;
    let (loaded, digest) = load_at_start(
        || Some(names_in(&config)),
        || {
            loads += 1;
            let named = names_in(&config);
            if loads == 1 {
                // Between the hash and the load, the configuration moved
                // on to another certificate.
                std::fs::write(&config, format!("{}\n", b.display())).unwrap();
                return Ok::<_, ()>(names_in(&config));
            }
            Ok(named)
        },
        |w: &Watched| w.clone(),
    )
    .unwrap();
    assert_eq!(loads, 2, "loaded again once the file set held");
    assert_eq!(loaded, watched(&[&config, &b]));
    assert_eq!(digest, Some(fingerprint(&loaded)));

    // A configuration that never holds still: the gateway starts, and the
    // watcher hashes the files itself.
    let mut loads = 0;
    let (_, digest) = load_at_start(
        || Some(names_in(&config)),
        || {
            loads += 1;
            Ok::<_, ()>(watched(&[&config, &a]))
        },
        |w: &Watched| w.clone(),
    )
    .unwrap();
    assert_eq!(loads, START_LOAD_ATTEMPTS);
    assert_eq!(digest, None);
}

#[test]
fn a_load_error_at_start_is_returned() {
    let r: Result<((), _), &str> = load_at_start(|| None, || Err("bad policy"), |_| watched(&[]));
    assert_eq!(r.unwrap_err(), "bad policy");
}
