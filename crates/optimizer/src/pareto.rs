//! GEPA's per-instance Pareto front over a score table (candidates × validation examples).
//!
//! A candidate *leads* an instance when no candidate scores higher on it. Instances on which
//! every candidate scores the same say nothing about who is better and are left out. The front
//! is the set of candidates leading at least one instance, minus those dominated by another
//! front member (at least as good everywhere, better somewhere). Parents are sampled with
//! probability proportional to the number of instances they lead, so a prompt that is the
//! only one to solve a few tasks keeps being developed even when its mean is not the best.

/// Scores of each candidate (rows) on the same instances (columns).
pub type Table = [Vec<f64>];

/// For each candidate, the number of informative instances it leads (ties all lead).
pub fn lead_counts(table: &Table) -> Vec<usize> {
    let mut counts = vec![0; table.len()];
    let Some(width) = table.first().map(|r| r.len()) else {
        return counts;
    };
    for j in 0..width {
        let column = table.iter().map(|r| r[j]);
        let best = column.clone().fold(f64::NEG_INFINITY, f64::max);
        let worst = column.fold(f64::INFINITY, f64::min);
        if best <= worst {
            continue; // everyone equal: uninformative
        }
        for (i, row) in table.iter().enumerate() {
            if row[j] >= best {
                counts[i] += 1;
            }
        }
    }
    counts
}

/// `a` dominates `b`: at least as good on every instance and better on one.
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x >= y) && a.iter().zip(b).any(|(x, y)| x > y)
}

/// The front: candidates leading an instance and not dominated by another such candidate, in
/// index order. Identical rows are kept once (the first). When no instance is informative the
/// front is the first candidate with the best mean.
pub fn front(table: &Table) -> Vec<usize> {
    let counts = lead_counts(table);
    let leaders: Vec<usize> = (0..table.len()).filter(|&i| counts[i] > 0).collect();
    if leaders.is_empty() {
        return best_mean(table).into_iter().collect();
    }
    let mut out: Vec<usize> = Vec::new();
    for &i in &leaders {
        let dominated = leaders
            .iter()
            .any(|&k| k != i && dominates(&table[k], &table[i]));
        let duplicate = out.iter().any(|&k| table[k] == table[i]);
        if !dominated && !duplicate {
            out.push(i);
        }
    }
    out
}

/// The first candidate with the highest mean score.
pub fn best_mean(table: &Table) -> Option<usize> {
    let mean = |r: &Vec<f64>| r.iter().sum::<f64>() / r.len().max(1) as f64;
    (0..table.len()).reduce(|a, b| {
        if mean(&table[b]) > mean(&table[a]) {
            b
        } else {
            a
        }
    })
}

/// A front member drawn with probability proportional to the instances it leads; `u` is a
/// uniform number in [0, 1).
pub fn sample_parent(table: &Table, u: f64) -> Option<usize> {
    let members = front(table);
    let counts = lead_counts(table);
    let weights: Vec<usize> = members.iter().map(|&i| counts[i].max(1)).collect();
    let total: usize = weights.iter().sum();
    if total == 0 {
        return members.first().copied();
    }
    let mut target = u.clamp(0.0, 1.0 - f64::EPSILON) * total as f64;
    for (m, w) in members.iter().zip(&weights) {
        if target < *w as f64 {
            return Some(*m);
        }
        target -= *w as f64;
    }
    members.last().copied()
}

/// Two front members that each lead an instance the other does not, the pair covering the
/// most instances between them (ties: the lowest indices). `skip` rules out pairs already
/// tried.
pub fn merge_pair(table: &Table, skip: &dyn Fn(usize, usize) -> bool) -> Option<(usize, usize)> {
    let members = front(table);
    let width = table.first().map(|r| r.len()).unwrap_or(0);
    let leads = |i: usize| -> Vec<bool> {
        (0..width)
            .map(|j| {
                let best = table.iter().map(|r| r[j]).fold(f64::NEG_INFINITY, f64::max);
                let worst = table.iter().map(|r| r[j]).fold(f64::INFINITY, f64::min);
                best > worst && table[i][j] >= best
            })
            .collect()
    };
    let mut best: Option<((usize, usize), usize)> = None;
    for (x, &a) in members.iter().enumerate() {
        for &b in &members[x + 1..] {
            if skip(a, b) {
                continue;
            }
            let (la, lb) = (leads(a), leads(b));
            let a_only = la.iter().zip(&lb).any(|(p, q)| *p && !*q);
            let b_only = la.iter().zip(&lb).any(|(p, q)| !*p && *q);
            if !(a_only && b_only) {
                continue;
            }
            let covered = la.iter().zip(&lb).filter(|(p, q)| **p || **q).count();
            if best.is_none_or(|(_, c)| covered > c) {
                best = Some(((a, b), covered));
            }
        }
    }
    best.map(|(pair, _)| pair)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(rows: &[&[f64]]) -> Vec<Vec<f64>> {
        rows.iter().map(|r| r.to_vec()).collect()
    }

    #[test]
    fn leads_skip_uninformative_instances_and_count_ties() {
        // Column 0: everyone 1 (uninformative). Column 1: 0 and 2 tie for best.
        let table = t(&[&[1., 1., 0., 0.], &[1., 0., 1., 0.], &[1., 1., 0., 1.]]);
        assert_eq!(lead_counts(&table), vec![1, 1, 2]);
    }

    #[test]
    fn the_front_keeps_specialists_and_drops_the_dominated() {
        // 0: seed, solves a; 1: solves a, b (dominates 0); 2: solves only c (a specialist with a
        // lower mean than 1); 3: solves a, b too (duplicate of 1).
        let table = t(&[
            &[1., 0., 0., 0.],
            &[1., 1., 0., 0.],
            &[0., 0., 1., 0.],
            &[1., 1., 0., 0.],
        ]);
        assert_eq!(front(&table), vec![1, 2]);
        // 1 leads a and b, 2 leads c: weights 2 and 1.
        assert_eq!(sample_parent(&table, 0.0), Some(1));
        assert_eq!(sample_parent(&table, 0.6), Some(1));
        assert_eq!(sample_parent(&table, 0.7), Some(2));
        assert_eq!(sample_parent(&table, 0.99), Some(2));
    }

    #[test]
    fn with_nothing_informative_the_front_is_the_best_mean() {
        let table = t(&[&[0., 0.], &[0., 0.]]);
        assert_eq!(front(&table), vec![0]);
        assert_eq!(sample_parent(&table, 0.5), Some(0));
        let fractional = t(&[&[0.5, 0.5], &[0.5, 0.5]]);
        assert_eq!(front(&fractional), vec![0]);
        assert_eq!(best_mean(&t(&[&[0.2], &[0.7], &[0.7]])), Some(1));
    }

    #[test]
    fn fractional_rewards_lead_by_the_maximum() {
        let table = t(&[&[0.9, 0.1], &[0.5, 0.6], &[0.4, 0.5]]);
        assert_eq!(lead_counts(&table), vec![1, 1, 0]);
        assert_eq!(front(&table), vec![0, 1]);
        assert!(dominates(&table[1], &table[2]));
        assert!(!dominates(&table[0], &table[1]));
        assert!(!dominates(&table[1], &table[1]));
    }

    #[test]
    fn merge_pairs_lead_on_different_instances() {
        // 0 leads a, b; 1 leads c; 2 leads b, c, d: (0, 2) covers a-d (4), (0, 1) 3, (1, 2):
        // 1's leads are a subset of 2's, so not complementary.
        let table = t(&[&[1., 1., 0., 0.], &[0., 0., 1., 0.], &[0., 1., 1., 1.]]);
        assert_eq!(front(&table), vec![0, 2]);
        assert_eq!(merge_pair(&table, &|_, _| false), Some((0, 2)));
        assert_eq!(merge_pair(&table, &|a, b| (a, b) == (0, 2)), None);
        // A front of one has no pair.
        assert_eq!(merge_pair(&t(&[&[1., 1.], &[0., 1.]]), &|_, _| false), None);
    }
}
