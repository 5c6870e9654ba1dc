//! GEPA's merge for a single prompt: a three-way merge of lines of two candidates against
//! their nearest common ancestor, with no LLM call. Each candidate's changes are the lines it
//! added to the ancestor and the ancestor's lines it removed; the merge is the first
//! candidate with the second's additions inserted after the line that precedes them in the
//! second (or at its end) and the second's removals applied. Changes that touch the same line
//! (one removes what the other keeps and edits around) are resolved in favour of keeping text.
//!
//! The result is `None` when it would equal either input (nothing to combine).

use std::collections::HashSet;

/// Lines of `text` (without line endings).
fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

/// The three-way line merge of `a` and `b` against `ancestor`.
pub fn merge(ancestor: &str, a: &str, b: &str) -> Option<String> {
    let base: HashSet<&str> = lines(ancestor).into_iter().collect();
    let (la, lb) = (lines(a), lines(b));
    let in_a: HashSet<&str> = la.iter().copied().collect();
    let in_b: HashSet<&str> = lb.iter().copied().collect();
    // The ancestor's lines `b` removed (and `a` still has): removed from the merge.
    let removed_by_b: HashSet<&str> = base
        .iter()
        .copied()
        .filter(|l| !in_b.contains(l) && !l.trim().is_empty())
        .collect();
    let mut out: Vec<&str> = la
        .iter()
        .copied()
        .filter(|l| !removed_by_b.contains(l))
        .collect();
    // `b`'s additions, each after its nearest preceding line that is already in the merge.
    let mut present: HashSet<&str> = out.iter().copied().collect();
    for (k, &line) in lb.iter().enumerate() {
        if base.contains(line) || in_a.contains(line) || present.contains(line) {
            continue;
        }
        let anchor = lb[..k]
            .iter()
            .rev()
            .find_map(|prev| out.iter().rposition(|l| l == prev));
        let at = match anchor {
            Some(i) => i + 1,
            None if k == 0 => 0,
            None => out.len(),
        };
        out.insert(at, line);
        present.insert(line);
    }
    let merged = out.join("\n");
    let same = |x: &str| x.trim_end() == merged.trim_end();
    if same(a) || same(b) || merged.trim().is_empty() {
        None
    } else {
        Some(merged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "You are a coding agent.\nFix the issue.";

    #[test]
    fn additions_of_both_are_combined_in_place() {
        let a = "You are a coding agent.\nALWAYS_RUN_TESTS\nFix the issue.";
        let b = "You are a coding agent.\nFix the issue.\nCITE_FILES";
        assert_eq!(
            merge(SEED, a, b).as_deref(),
            Some("You are a coding agent.\nALWAYS_RUN_TESTS\nFix the issue.\nCITE_FILES")
        );
        // Symmetric in content.
        assert_eq!(
            merge(SEED, b, a).as_deref(),
            Some("You are a coding agent.\nALWAYS_RUN_TESTS\nFix the issue.\nCITE_FILES")
        );
    }

    #[test]
    fn removals_of_the_second_apply_and_its_edits_replace_lines() {
        // b rewrote the second line; a added a rule at the end.
        let a = "You are a coding agent.\nFix the issue.\nNEVER_FORCE_PUSH";
        let b = "You are a coding agent.\nFix the issue, then run the tests.";
        assert_eq!(
            merge(SEED, a, b).as_deref(),
            Some("You are a coding agent.\nFix the issue, then run the tests.\nNEVER_FORCE_PUSH")
        );
    }

    #[test]
    fn nothing_to_combine_gives_none() {
        let a = "You are a coding agent.\nFix the issue.\nCITE_FILES";
        // b is a subset of a's changes.
        assert_eq!(merge(SEED, a, SEED), None);
        assert_eq!(merge(SEED, a, a), None);
        // b's only change is already in a.
        let b = "You are a coding agent.\nCITE_FILES\nFix the issue.";
        assert_eq!(merge(SEED, a, b), None);
    }

    #[test]
    fn an_addition_before_everything_goes_first() {
        let a = "You are a coding agent.\nFix the issue.\nX";
        let b = "Y\nYou are a coding agent.\nFix the issue.";
        assert_eq!(
            merge(SEED, a, b).as_deref(),
            Some("Y\nYou are a coding agent.\nFix the issue.\nX")
        );
    }
}
