use super::*;
use crate::pattern::{split_request_path, Pattern};

fn node_with(patterns: &[&str]) -> Node {
    let mut root = Node::default();
    for (i, p) in patterns.iter().enumerate() {
        let p = Pattern::parse(p).unwrap();
        root.bucket_mut(p.segments()).deny_any.push(i as RuleIdx);
    }
    root
}

/// Rule indices of every bucket matching `path`, sorted.
fn hits(root: &Node, path: &[&str]) -> Vec<RuleIdx> {
    let path = format!("/{}", path.join("/"));
    let segs = split_request_path(&path).unwrap();
    let mut out = Vec::new();
    root.matches(&segs, 0, &mut |b: &Bucket| {
        out.extend_from_slice(&b.deny_any)
    });
    out.sort_unstable();
    out
}

#[test]
fn each_segment_kind_matches() {
    let root = node_with(&[
        "/", "/a", "/a/b", "/a/{x}", "/a/*", "/a/**", "/**", "/a/{x}/c",
    ]);
    assert_eq!(hits(&root, &[]), [0, 6]);
    assert_eq!(hits(&root, &["a"]), [1, 5, 6]);
    assert_eq!(hits(&root, &["a", "b"]), [2, 3, 4, 5, 6]);
    assert_eq!(hits(&root, &["a", "z"]), [3, 4, 5, 6]);
    assert_eq!(hits(&root, &["a", "z", "c"]), [5, 6, 7]);
    assert_eq!(hits(&root, &["a", "z", "d"]), [5, 6]);
    assert_eq!(hits(&root, &["b"]), [6]);
}

#[test]
fn literals_are_case_sensitive() {
    let root = node_with(&["/Admin"]);
    assert_eq!(hits(&root, &["Admin"]), [0]);
    assert!(hits(&root, &["admin"]).is_empty());
    assert!(hits(&root, &["ADMIN"]).is_empty());
}

#[test]
fn rules_sharing_a_pattern_share_a_bucket() {
    let root = node_with(&["/a/{x}", "/a/{y}", "/a/*"]);
    let mut buckets = 0;
    let segs = split_request_path("/a/v").unwrap();
    root.matches(&segs, 0, &mut |_| buckets += 1);
    assert_eq!(buckets, 1);
    assert_eq!(hits(&root, &["a", "v"]), [0, 1, 2]);
}

#[test]
fn for_roles_visits_only_the_given_roles() {
    let mut groups: BTreeMap<RoleIdx, Vec<RuleIdx>> = BTreeMap::new();
    for r in 0..10 {
        groups.insert(r, vec![r * 100]);
    }
    let mut seen = Vec::new();
    // Fewer roles than groups: looks the roles up.
    Bucket::for_roles(&groups, &[2, 7, 42], |l| seen.extend_from_slice(l));
    assert_eq!(seen, [200, 700]);
    // More roles than groups: walks the groups.
    let small: BTreeMap<RoleIdx, Vec<RuleIdx>> = [(3, vec![3]), (50, vec![50])].into();
    let mut seen = Vec::new();
    Bucket::for_roles(&small, &[1, 2, 3, 4, 5], |l| seen.extend_from_slice(l));
    assert_eq!(seen, [3]);
    let mut seen = Vec::new();
    Bucket::for_roles(&small, &[], |l| seen.extend_from_slice(l));
    assert!(seen.is_empty());
}

#[test]
fn rest_matches_paths_longer_than_any_pattern() {
    let root = node_with(&["/a/**", "/a/b"]);
    let long = format!("/a{}", "/x".repeat(crate::MAX_PATTERN_SEGMENTS + 5));
    let segs = split_request_path(&long).unwrap();
    let mut out = Vec::new();
    root.matches(&segs, 0, &mut |b: &Bucket| {
        out.extend_from_slice(&b.deny_any)
    });
    assert_eq!(out, [0]);
}

#[test]
fn matched_spills_past_its_inline_capacity() {
    let buckets: Vec<Bucket> = (0..40).map(|_| Bucket::default()).collect();
    let mut m = Matched::new();
    assert!(m.is_empty());
    for b in &buckets {
        m.push(b);
    }
    assert!(!m.is_empty());
    assert_eq!(m.iter().count(), 40);
    assert!(m.iter().zip(&buckets).all(|(a, b)| std::ptr::eq(a, b)));
}
