//! The rule index: route -> method -> segment trie of path patterns, with
//! the rules at each trie node grouped by role.

use std::collections::BTreeMap;

use crate::hash::FastMap;

use crate::pattern::{PathSegments, Segment};

/// Rule index into `Policy::rules`.
pub(crate) type RuleIdx = u32;
/// Role index into `Policy::roles`.
pub(crate) type RoleIdx = u32;

/// The rules of one route.
#[derive(Debug, Default)]
pub(crate) struct RouteIndex {
    /// Rules listing the method.
    pub(crate) by_method: FastMap<Box<str>, Node>,
    /// Rules with `methods: ["*"]`; consulted for every method.
    pub(crate) any_method: Node,
}

/// A trie node: one level per path segment.
#[derive(Debug, Default)]
pub(crate) struct Node {
    literal: FastMap<Box<str>, Node>,
    /// `{param}` and `*` share a child: both match one non-empty segment.
    single: Option<Box<Node>>,
    /// Rules whose pattern ends here.
    exact: Option<Box<Bucket>>,
    /// Rules whose pattern ends here with `**`.
    rest: Option<Box<Bucket>>,
}

/// Rules of one pattern end point, grouped so a lookup touches only the
/// principal's roles. Lists are in rule order (file order).
#[derive(Debug, Default)]
pub(crate) struct Bucket {
    /// Deny rules without `roles`: they apply to every principal.
    pub(crate) deny_any: Vec<RuleIdx>,
    pub(crate) deny_by_role: BTreeMap<RoleIdx, Vec<RuleIdx>>,
    pub(crate) allow_by_role: BTreeMap<RoleIdx, Vec<RuleIdx>>,
}

impl Node {
    /// The bucket for `segments`, created on demand.
    pub(crate) fn bucket_mut(&mut self, segments: &[Segment]) -> &mut Bucket {
        let mut node = self;
        for seg in segments {
            node = match seg {
                Segment::Literal(lit) => node.literal.entry(lit.clone()).or_default(),
                Segment::Param(_) | Segment::Star => node.single.get_or_insert_with(Box::default),
                Segment::Rest => return node.rest.get_or_insert_with(Box::default),
            };
        }
        node.exact.get_or_insert_with(Box::default)
    }

    /// Calls `f` with every bucket whose pattern matches `path`, starting
    /// at segment `depth` (this node's depth).
    ///
    /// Each trie node sits at a fixed depth and has one parent, so a walk
    /// visits a node at most once; recursion depth is bounded by
    /// [`crate::MAX_PATTERN_SEGMENTS`].
    pub(crate) fn matches<'a>(
        &'a self,
        path: &PathSegments<'_>,
        depth: usize,
        f: &mut impl FnMut(&'a Bucket),
    ) {
        if let Some(b) = &self.rest {
            f(b);
        }
        if depth == path.len() {
            if let Some(b) = &self.exact {
                f(b);
            }
        } else if let Some(seg) = path.get(depth) {
            if let Some(child) = self.literal.get(seg) {
                child.matches(path, depth + 1, f);
            }
            if let Some(child) = &self.single {
                child.matches(path, depth + 1, f);
            }
        }
    }
}

/// The buckets one request matches: a few, kept inline.
pub(crate) struct Matched<'a> {
    inline: [Option<&'a Bucket>; 16],
    len: usize,
    spill: Vec<&'a Bucket>,
}

impl<'a> Matched<'a> {
    pub(crate) fn new() -> Self {
        Self {
            inline: [None; 16],
            len: 0,
            spill: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, b: &'a Bucket) {
        match self.inline.get_mut(self.len) {
            Some(slot) => {
                *slot = Some(b);
                self.len += 1;
            }
            None => self.spill.push(b),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &'a Bucket> + '_ {
        self.inline
            .iter()
            .map_while(|b| *b)
            .chain(self.spill.iter().copied())
    }
}

impl Bucket {
    pub(crate) fn has_allow(&self) -> bool {
        !self.allow_by_role.is_empty()
    }

    /// Calls `f` with the rule lists of `groups` for each of `roles`
    /// (sorted ascending), iterating whichever side is smaller.
    pub(crate) fn for_roles(
        groups: &BTreeMap<RoleIdx, Vec<RuleIdx>>,
        roles: &[RoleIdx],
        mut f: impl FnMut(&[RuleIdx]),
    ) {
        if groups.is_empty() || roles.is_empty() {
            return;
        }
        if roles.len() <= groups.len() {
            for r in roles {
                if let Some(list) = groups.get(r) {
                    f(list);
                }
            }
        } else {
            for (r, list) in groups {
                if roles.binary_search(r).is_ok() {
                    f(list);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
