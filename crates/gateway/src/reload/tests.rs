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
