use super::*;

#[test]
fn scratch() {
    for src in [
        "",
        "# only a comment\n",
        "revision: 1\nroles:\n  a: {}\n  a: {}\n",
        "revision: 1\nfoo: 2\n",
        "revision: 1\nrules:\n  - id: x\n    effect: alow\n",
        "revision: 1\nrules:\n  - id: x\n    effect: allow\n    bogus: 1\n",
        "revision: 1\nrules:\n  - { id: x, effect: allow, roles: [a], route: r, when: { time: { days: [mon], extra: 1 } } }\n",
        "roles: {}\n",
        "revision: 1.5\n",
        "revision: [1]\n",
        "revision: 1\nrules: [ { id: x\n",
        "revision: 1\n---\nrevision: 2\n",
        "revision: 1\nroles:\n  viewer:\n  editor: { inherits: [viewer] }\n",
        "revision: &a 1\nx: *a\n",
        "revision: 1\nroles:\n  admin: { inherits: [editor] }\n  editor: { inherits: [admin] }\n",
        "revision: 1\nrules:\n  - { id: x, effect: allow, roles: [a], route: r, when: { equal: {a: spiffe.id, a: spiffe.id} } }\n",
    ] {
        match Policy::from_yaml(src) {
            Ok(p) => println!("OK {:?}", p.revision()),
            Err(e) => println!("{src:?}\n   => path={:?} display={}", e.path(), e),
        }
    }
}
