//! Paths that branch off other paths: a branch keeps its parent's tokens up to a chosen token, puts
//! another token there (one the model considered) or samples again from there, and goes on. The paths
//! of a run then form a tree, recorded as each branch's parent and branch point.

use serde::{Deserialize, Serialize};

use crate::engine::SamplingParams;

/// Where a path leaves its parent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BranchRecord {
    /// The parent's number (1-based, as on screen).
    pub parent: usize,
    /// Index (0-based) of the token where the branch leaves the parent: the parent's tokens before it
    /// are kept.
    pub at: usize,
    /// The token forced at `at` (an alternative the model considered); None: sampled again from there.
    #[serde(default)]
    pub token: Option<u32>,
    /// The parent's token at `at`, as text.
    #[serde(default)]
    pub from_text: String,
    /// The forced token as text (empty when resampled).
    #[serde(default)]
    pub to_text: String,
    /// How the branch samples after its forced tokens.
    pub sampling: SamplingParams,
}

impl BranchRecord {
    /// How many of the branch's own tokens were forced at its start (the parent's, then the chosen one).
    pub fn prefix_len(&self) -> usize {
        self.at + usize::from(self.token.is_some())
    }

    /// `@ token 17 (" 8" → " 9")`: where and how it leaves the parent (token numbers 1-based).
    pub fn describe(&self) -> String {
        let to = if self.token.is_some() { format!("{:?}", self.to_text) } else { "↻ resampled".to_string() };
        format!("@ token {} ({:?} → {to})", self.at + 1, self.from_text)
    }
}

/// The paths in tree order with their depth: each root, then its branches (depth first, in the order
/// they were made). `parents[i]` is path i's parent (0-based); a parent that is missing or not earlier
/// than its child makes the child a root, so a damaged file still lists every path once.
pub fn tree_order(parents: &[Option<usize>]) -> Vec<(usize, usize)> {
    let parent = |i: usize| parents[i].filter(|&p| p < i);
    let mut out = Vec::with_capacity(parents.len());
    fn visit(
        i: usize,
        depth: usize,
        parents: &dyn Fn(usize) -> Option<usize>,
        n: usize,
        out: &mut Vec<(usize, usize)>,
    ) {
        out.push((i, depth));
        for c in (i + 1..n).filter(|&c| parents(c) == Some(i)) {
            visit(c, depth + 1, parents, n, out);
        }
    }
    for root in (0..parents.len()).filter(|&i| parent(i).is_none()) {
        visit(root, 0, &parent, parents.len(), &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_order_lists_each_path_once_under_its_parent() {
        // 0 ─ 2 ─ 4, 0 ─ 3; 1; 5 names a later parent (damaged): a root.
        let parents = [None, None, Some(0), Some(0), Some(2), Some(6)];
        assert_eq!(tree_order(&parents), vec![(0, 0), (2, 1), (4, 2), (3, 1), (1, 0), (5, 0)]);
    }

    #[test]
    fn describe_names_the_token_and_the_swap() {
        let mut b = BranchRecord {
            parent: 1,
            at: 16,
            token: Some(9),
            from_text: " 8".into(),
            to_text: " 9".into(),
            sampling: SamplingParams::default(),
        };
        assert_eq!(b.describe(), "@ token 17 (\" 8\" → \" 9\")");
        assert_eq!(b.prefix_len(), 17);
        b.token = None;
        assert_eq!(b.describe(), "@ token 17 (\" 8\" → ↻ resampled)");
        assert_eq!(b.prefix_len(), 16);
    }
}
