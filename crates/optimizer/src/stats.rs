//! Intervals for the scores the optimizer reports, and the registration gate.
//!
//! - A success rate (every reward 0 or 1) gets a Wilson score interval.
//! - A mean of rewards in [0, 1] gets a seeded percentile bootstrap interval.
//! - Best minus baseline on the same examples: Newcombe's method 10 (Wilson-based, for paired
//!   rates) when both are success rates, else a paired percentile bootstrap of the mean
//!   difference.
//!
//! Which of the two applies is decided by [`RewardKind::of`], the one place that looks at what
//! a reward means.

use lightning_core::{evidence::Score, IntervalMethod, PairedDifference};
use rand::{Rng, SeedableRng};

use crate::{OptimizerError, Result};

/// Bootstrap resamples: enough for stable 95% percentiles on the set sizes the optimizer uses.
pub const BOOTSTRAP_RESAMPLES: usize = 4000;
/// Default `--confidence`.
pub const DEFAULT_CONFIDENCE: f64 = 0.95;
/// Default `--min-improvement`: the interval's lower end must be above 0.
pub const DEFAULT_MIN_IMPROVEMENT: f64 = 0.0;

/// Whether rewards are success/failure outcomes or graded scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewardKind {
    /// Every reward is exactly 0 or 1.
    Binary,
    /// Rewards anywhere in [0, 1].
    Graded,
}

impl RewardKind {
    pub fn of(rewards: &[f64]) -> Self {
        if rewards.iter().all(|&r| r == 0.0 || r == 1.0) {
            RewardKind::Binary
        } else {
            RewardKind::Graded
        }
    }
}

/// The standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const LOW: f64 = 0.02425;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p <= 0.0 {
        f64::NEG_INFINITY
    } else if p >= 1.0 {
        f64::INFINITY
    } else if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// z for a two-sided interval at `confidence`.
fn z(confidence: f64) -> f64 {
    normal_quantile(1.0 - (1.0 - confidence) / 2.0)
}

/// Wilson score interval for `successes` out of `n`; (0, 1) when `n` is 0.
pub fn wilson(successes: u64, n: u64, confidence: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    // One Wilson formula for the project: the rollout comparison uses the same one.
    lightning_core::stats::wilson(successes as f64, n as f64, z(confidence))
        .map_or((0.0, 1.0), |e| (e.low, e.high))
}

/// Percentile bootstrap interval of the mean of `values`, seeded.
pub fn bootstrap_mean(values: &[f64], confidence: f64, seed: u64) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 1.0);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let n = values.len();
    let mut means: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| (0..n).map(|_| values[rng.gen_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let alpha = (1.0 - confidence) / 2.0;
    let at = |q: f64| {
        let i = (q * (means.len() - 1) as f64).round() as usize;
        means[i.min(means.len() - 1)]
    };
    (at(alpha), at(1.0 - alpha))
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// The mean of `rewards` with n and its interval (Wilson or bootstrap, see [`RewardKind`]).
pub fn score(rewards: &[f64], confidence: f64, seed: u64) -> Score {
    let (low, high, method) = match RewardKind::of(rewards) {
        RewardKind::Binary => {
            let s = rewards.iter().filter(|&&r| r == 1.0).count() as u64;
            let (l, h) = wilson(s, rewards.len() as u64, confidence);
            (l, h, IntervalMethod::Wilson)
        }
        RewardKind::Graded => {
            let (l, h) = bootstrap_mean(rewards, confidence, seed);
            (l, h, IntervalMethod::Bootstrap)
        }
    };
    Score {
        mean: mean(rewards),
        n: rewards.len() as i64,
        low,
        high,
        confidence,
        method,
    }
}

/// Newcombe's method 10 for `p1 - p2` from a paired 2×2 table: `both` = 1 under both,
/// `only1` = 1 only under the first, `only2` = 1 only under the second, `neither`.
pub fn newcombe_paired(
    both: u64,
    only1: u64,
    only2: u64,
    neither: u64,
    confidence: f64,
) -> (f64, f64, f64) {
    let n = both + only1 + only2 + neither;
    if n == 0 {
        return (0.0, -1.0, 1.0);
    }
    let nf = n as f64;
    let (p1, p2) = ((both + only1) as f64 / nf, (both + only2) as f64 / nf);
    let d = p1 - p2;
    let (l1, u1) = wilson(both + only1, n, confidence);
    let (l2, u2) = wilson(both + only2, n, confidence);
    let (a, b, c, e) = (both as f64, only1 as f64, only2 as f64, neither as f64);
    let margins = (a + b) * (c + e) * (a + c) * (b + e);
    let cross = a * e - b * c;
    // Newcombe's continuity-corrected correlation: shrink a positive association by n/2.
    let corrected = if cross > nf / 2.0 {
        cross - nf / 2.0
    } else if cross < 0.0 {
        cross
    } else {
        0.0
    };
    let phi = if margins > 0.0 {
        corrected / margins.sqrt()
    } else {
        0.0
    };
    let lower = d
        - ((p1 - l1).powi(2) - 2.0 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2).powi(2))
            .max(0.0)
            .sqrt();
    let upper = d
        + ((p2 - l2).powi(2) - 2.0 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1).powi(2))
            .max(0.0)
            .sqrt();
    (d, lower.max(-1.0), upper.min(1.0))
}

/// `best[i] - baseline[i]` over the same examples, with its interval.
pub fn paired_difference(
    best: &[f64],
    baseline: &[f64],
    confidence: f64,
    seed: u64,
) -> Result<PairedDifference> {
    if best.len() != baseline.len() {
        return Err(OptimizerError::Config(format!(
            "paired comparison needs the same examples: {} vs {}",
            best.len(),
            baseline.len()
        )));
    }
    let diffs: Vec<f64> = best.iter().zip(baseline).map(|(b, a)| b - a).collect();
    let wins = diffs.iter().filter(|&&d| d > 0.0).count() as i64;
    let losses = diffs.iter().filter(|&&d| d < 0.0).count() as i64;
    let ties = diffs.len() as i64 - wins - losses;
    let all: Vec<f64> = best.iter().chain(baseline).copied().collect();
    let (mean, low, high, method) = match RewardKind::of(&all) {
        RewardKind::Binary => {
            let mut t = [0u64; 4];
            for (b, a) in best.iter().zip(baseline) {
                t[match (*b == 1.0, *a == 1.0) {
                    (true, true) => 0,
                    (true, false) => 1,
                    (false, true) => 2,
                    (false, false) => 3,
                }] += 1;
            }
            let (d, l, h) = newcombe_paired(t[0], t[1], t[2], t[3], confidence);
            (d, l, h, IntervalMethod::Newcombe)
        }
        RewardKind::Graded => {
            let (l, h) = bootstrap_mean(&diffs, confidence, seed);
            (mean(&diffs), l, h, IntervalMethod::Bootstrap)
        }
    };
    Ok(PairedDifference {
        mean,
        n: diffs.len() as i64,
        low,
        high,
        confidence,
        method,
        wins,
        losses,
        ties,
    })
}

/// The registration gate: the whole interval must lie above `min_improvement`.
pub fn significant(d: &PairedDifference, min_improvement: f64) -> bool {
    d.n > 0 && d.low > min_improvement
}

/// `0.350 [0.210, 0.510] n=40`.
pub fn format_score(s: &Score) -> String {
    format!("{:.3} [{:.3}, {:.3}] n={}", s.mean, s.low, s.high, s.n)
}

/// `+0.150 [0.020, 0.280] n=40 (9 better, 3 worse)`.
pub fn format_difference(d: &PairedDifference) -> String {
    format!(
        "{:+.3} [{:+.3}, {:+.3}] n={} ({} better, {} worse, {} same)",
        d.mean, d.low, d.high, d.n, d.wins, d.losses, d.ties
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn normal_quantiles_match_tables() {
        assert!(close(normal_quantile(0.975), 1.959_963_985, 1e-8));
        assert!(close(normal_quantile(0.995), 2.575_829_304, 1e-8));
        assert!(close(normal_quantile(0.95), 1.644_853_627, 1e-8));
        assert!(close(normal_quantile(0.5), 0.0, 1e-12));
        assert!(close(normal_quantile(0.01), -2.326_347_874, 1e-8));
    }

    /// Wilson intervals published by Newcombe (1998), "Two-sided confidence intervals for the
    /// single proportion", Statistics in Medicine 17:857-872, Table I (method 3).
    #[test]
    fn wilson_matches_newcombe_1998_table() {
        for (x, n, lo, hi) in [
            (81, 263, 0.2553, 0.3662),
            (15, 148, 0.0624, 0.1605),
            (0, 20, 0.0, 0.1611),
            (1, 29, 0.0061, 0.1718),
        ] {
            let (l, h) = wilson(x, n, 0.95);
            assert!(close(l, lo, 5e-5) && close(h, hi, 5e-5), "{x}/{n}: {l} {h}");
        }
        assert_eq!(wilson(0, 0, 0.95), (0.0, 1.0));
        let s = score(&[1.0, 0.0, 1.0, 1.0], 0.95, 0);
        assert_eq!((s.method, s.n, s.mean), (IntervalMethod::Wilson, 4, 0.75));
    }

    /// Newcombe (1998), "Improved confidence intervals for the difference between binomial
    /// proportions based on paired data", Statistics in Medicine 17:2635-2650, example (a)
    /// 36/12/2/0; and the worked example of Altman et al., "Statistics with confidence" (2000),
    /// Table 6.2 (14/5/0/22).
    #[test]
    fn newcombe_paired_matches_published_examples() {
        let (d, l, h) = newcombe_paired(36, 12, 2, 0, 0.95);
        assert!(close(d, 0.2, 1e-12));
        assert!(close(l, 0.0569, 5e-5) && close(h, 0.3404, 5e-5), "{l} {h}");
        let (d, l, h) = newcombe_paired(14, 5, 0, 22, 0.95);
        assert!(close(d, 5.0 / 41.0, 1e-12));
        assert!(close(l, 0.0115, 5e-5) && close(h, 0.2265, 5e-5), "{l} {h}");
        // No discordant pairs: a zero difference whose interval straddles 0.
        let (d, l, h) = newcombe_paired(10, 0, 0, 10, 0.95);
        assert!(d == 0.0 && l < 0.0 && h > 0.0);
    }

    #[test]
    fn bootstrap_is_seeded_and_brackets_the_mean() {
        let v: Vec<f64> = (0..50).map(|i| (i % 10) as f64 / 10.0).collect();
        let a = bootstrap_mean(&v, 0.95, 1);
        assert_eq!(a, bootstrap_mean(&v, 0.95, 1));
        let m = mean(&v);
        assert!(a.0 < m && m < a.1, "{a:?} {m}");
        // Width close to the normal approximation 2 * 1.96 * sd / sqrt(n).
        let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt();
        let expected = 2.0 * 1.96 * sd / (v.len() as f64).sqrt();
        assert!(
            close(a.1 - a.0, expected, 0.2 * expected),
            "{a:?} vs {expected}"
        );
        let s = score(&v, 0.95, 1);
        assert_eq!(s.method, IntervalMethod::Bootstrap);
        // Constant values: a zero-width interval.
        assert_eq!(bootstrap_mean(&[0.5; 8], 0.95, 3), (0.5, 0.5));
    }

    #[test]
    fn paired_difference_and_the_gate() {
        // 12 better, 0 worse out of 40: significant.
        let base = vec![0.0; 40];
        let mut best = base.clone();
        best[..12].iter_mut().for_each(|x| *x = 1.0);
        let d = paired_difference(&best, &base, 0.95, 0).unwrap();
        assert_eq!(
            (d.wins, d.losses, d.ties, d.method),
            (12, 0, 28, IntervalMethod::Newcombe)
        );
        assert!(significant(&d, 0.0) && !significant(&d, 0.5), "{d:?}");
        // 3 better, 2 worse: not significant.
        let mut mixed = base.clone();
        mixed[..3].iter_mut().for_each(|x| *x = 1.0);
        let mut base2 = base.clone();
        base2[3..5].iter_mut().for_each(|x| *x = 1.0);
        let d = paired_difference(&mixed, &base2, 0.95, 0).unwrap();
        assert!(!significant(&d, 0.0), "{d:?}");
        // Graded rewards: the paired bootstrap.
        let b: Vec<f64> = (0..30).map(|i| 0.5 + (i % 3) as f64 * 0.1).collect();
        let a: Vec<f64> = (0..30).map(|i| 0.4 + (i % 2) as f64 * 0.1).collect();
        let d = paired_difference(&b, &a, 0.95, 0).unwrap();
        assert_eq!(d.method, IntervalMethod::Bootstrap);
        assert!(d.low > 0.0 && significant(&d, 0.0), "{d:?}");
        assert!(paired_difference(&[1.0], &[], 0.95, 0).is_err());
    }
}
