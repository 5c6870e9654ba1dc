//! Interval estimates and the always-valid sequential test used to compare prompt versions in
//! production (see docs/rollout.md for the method and its assumptions).

use serde::{Deserialize, Serialize};

/// The two-sided standard normal quantile for 95 %.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// A point estimate with a two-sided interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Estimate {
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

/// Wilson score interval for `successes` out of `n` at quantile `z`; `None` when `n == 0`.
pub fn wilson(successes: f64, n: f64, z: f64) -> Option<Estimate> {
    if n <= 0.0 {
        return None;
    }
    let p = successes / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    Some(Estimate {
        value: p,
        low: (centre - half).max(0.0),
        high: (centre + half).min(1.0),
    })
}

/// Running sums of one arm's per-run rewards: enough for its mean and variance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sums {
    pub n: f64,
    pub sum: f64,
    pub sum_sq: f64,
}

impl Sums {
    pub fn from_values(values: impl IntoIterator<Item = f64>) -> Self {
        values.into_iter().fold(Self::default(), Self::push)
    }

    /// The sums with one more observation.
    pub fn push(self, x: f64) -> Self {
        Self {
            n: self.n + 1.0,
            sum: self.sum + x,
            sum_sq: self.sum_sq + x * x,
        }
    }

    pub fn mean(&self) -> Option<f64> {
        (self.n > 0.0).then(|| self.sum / self.n)
    }

    /// Unbiased sample variance; `None` below two observations.
    pub fn variance(&self) -> Option<f64> {
        if self.n < 2.0 {
            return None;
        }
        let mean = self.sum / self.n;
        Some(((self.sum_sq - self.n * mean * mean) / (self.n - 1.0)).max(0.0))
    }

    /// Variance used by the sequential test: the sample variance, floored by that of a
    /// Bernoulli with one pseudo-success and one pseudo-failure added (Agresti–Caffo style), so
    /// an arm whose first runs all agree does not look infinitely certain.
    fn test_variance(&self, binary: bool) -> f64 {
        let floor = {
            let p = (self.sum + 1.0) / (self.n + 2.0);
            if binary {
                p * (1.0 - p)
            } else {
                1.0 / (4.0 * (self.n + 2.0))
            }
        };
        if binary {
            floor
        } else {
            self.variance().unwrap_or(floor).max(floor)
        }
    }

    /// Mean with a normal-approximation interval (t-free; used for `n ≥ 2`).
    pub fn mean_interval(&self, z: f64) -> Option<Estimate> {
        let mean = self.mean()?;
        let var = self.variance()?;
        let half = z * (var / self.n).sqrt();
        Some(Estimate {
            value: mean,
            low: mean - half,
            high: mean + half,
        })
    }
}

/// Settings of the mixture sequential probability ratio test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SequentialTest {
    /// Type I error bound over any number of looks.
    pub alpha: f64,
    /// Standard deviation of the normal mixing distribution over the true difference, in reward
    /// units (the effect size the test is most sensitive to).
    pub tau: f64,
    /// No verdict before each arm has this many runs (the normal approximation needs them).
    pub min_runs: u32,
}

impl Default for SequentialTest {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            tau: 0.1,
            min_runs: 30,
        }
    }
}

/// Difference `candidate − baseline` with an always-valid confidence interval and p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Difference {
    pub estimate: f64,
    /// Always-valid (1 − alpha) confidence interval: it covers the true difference at every
    /// look simultaneously with probability ≥ 1 − alpha.
    pub low: f64,
    pub high: f64,
    /// Always-valid p-value `min(1, 1/Λ)`: rejecting when it falls below alpha, at any look,
    /// keeps the false-positive rate ≤ alpha however often one looks.
    pub p_value: f64,
}

impl SequentialTest {
    /// The mSPRT for a difference in means (Johari, Pekelis & Walsh, "Always Valid Inference",
    /// 2017): with `θ̂ ~ N(θ, V)` and a `N(0, τ²)` mixture over θ under the alternative,
    /// `Λ = sqrt(V / (V + τ²)) · exp(τ² θ̂² / (2 V (V + τ²)))`.
    /// `binary` says the rewards are 0/1 (success rates), which fixes how variance is estimated.
    pub fn compare(&self, baseline: &Sums, candidate: &Sums, binary: bool) -> Option<Difference> {
        let (mean_a, mean_b) = (baseline.mean()?, candidate.mean()?);
        let v = baseline.test_variance(binary) / baseline.n
            + candidate.test_variance(binary) / candidate.n;
        let tau2 = self.tau * self.tau;
        let estimate = mean_b - mean_a;
        let log_lambda =
            0.5 * (v / (v + tau2)).ln() + tau2 * estimate * estimate / (2.0 * v * (v + tau2));
        let p_value = (-log_lambda).exp().min(1.0);
        // {θ : Λ(θ̂ − θ) < 1/α}, solved for |θ̂ − θ|.
        let bound =
            2.0 * v * (v + tau2) / tau2 * ((1.0 / self.alpha).ln() + 0.5 * ((v + tau2) / v).ln());
        let half = bound.max(0.0).sqrt();
        Some(Difference {
            estimate,
            low: estimate - half,
            high: estimate + half,
            p_value,
        })
    }

    /// What the evidence says so far.
    pub fn verdict(&self, baseline: &Sums, candidate: &Sums, diff: Option<&Difference>) -> Verdict {
        let enough =
            baseline.n >= f64::from(self.min_runs) && candidate.n >= f64::from(self.min_runs);
        match diff {
            Some(d) if enough && d.p_value < self.alpha => {
                if d.estimate > 0.0 {
                    Verdict::Better
                } else {
                    Verdict::Worse
                }
            }
            Some(_) if enough => Verdict::NoDifferenceYet,
            _ => Verdict::InsufficientData,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Fewer than `minRuns` runs in an arm.
    InsufficientData,
    /// Enough runs, but the difference is not significant (yet).
    NoDifferenceYet,
    /// The candidate is significantly better than the baseline.
    Better,
    /// The candidate is significantly worse than the baseline.
    Worse,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() < tol
    }

    #[test]
    fn wilson_matches_known_values() {
        // Reference values: Wilson (1927) formula evaluated independently (scipy/statsmodels
        // proportion_confint(method="wilson")).
        let e = wilson(50.0, 100.0, Z_95).unwrap();
        assert!(
            close(e.low, 0.403_832, 1e-5) && close(e.high, 0.596_168, 1e-5),
            "{e:?}"
        );
        let e = wilson(0.0, 10.0, Z_95).unwrap();
        assert!(
            close(e.low, 0.0, 1e-9) && close(e.high, 0.277_533, 1e-5),
            "{e:?}"
        );
        let e = wilson(9.0, 10.0, Z_95).unwrap();
        assert!(
            close(e.low, 0.595_850, 1e-5) && close(e.high, 0.982_124, 1e-5),
            "{e:?}"
        );
        assert!(wilson(0.0, 0.0, Z_95).is_none());
    }

    #[test]
    fn sums_mean_and_variance() {
        let s = Sums::from_values([1.0, 2.0, 3.0, 4.0]);
        assert_eq!(s.mean(), Some(2.5));
        assert!(close(s.variance().unwrap(), 5.0 / 3.0, 1e-12));
        assert_eq!(Sums::from_values([1.0]).variance(), None);
    }

    #[test]
    fn msprt_matches_hand_computed_value() {
        // Continuous rewards: V = 0.04/100 + 0.09/100 = 0.0013, τ² = 0.01, θ̂ = 0.1.
        // log Λ = ½ ln(0.0013/0.0113) + 0.01·0.01/(2·0.0013·0.0113) = −1.081_207 + 3.403_676.
        let a = Sums {
            n: 100.0,
            sum: 50.0,
            sum_sq: 0.04 * 99.0 + 100.0 * 0.25,
        };
        let b = Sums {
            n: 100.0,
            sum: 60.0,
            sum_sq: 0.09 * 99.0 + 100.0 * 0.36,
        };
        let d = SequentialTest::default().compare(&a, &b, false).unwrap();
        assert!(close(d.estimate, 0.1, 1e-12));
        let expected_log_lambda =
            0.5 * (0.0013f64 / 0.0113).ln() + 0.0001 / (2.0 * 0.0013 * 0.0113);
        assert!(close(expected_log_lambda, 2.322_457, 1e-5));
        assert!(
            close(d.p_value, (-expected_log_lambda).exp(), 1e-9),
            "{d:?}"
        );
        // p = e^-2.3225 ≈ 0.098: not yet significant, and the interval (which excludes 0 exactly
        // when p < alpha) still covers 0. A fixed-horizon z-test would already call it (z = 2.77).
        assert!(close(d.p_value, 0.098_029, 1e-5), "{d:?}");
        assert!(d.low < 0.0 && d.high > 0.1);
        // Four times the runs: significant, and the interval moves off 0.
        let scale = |s: &Sums| Sums {
            n: s.n * 4.0,
            sum: s.sum * 4.0,
            sum_sq: s.sum_sq * 4.0,
        };
        let d = SequentialTest::default()
            .compare(&scale(&a), &scale(&b), false)
            .unwrap();
        assert!(d.p_value < 0.05 && d.low > 0.0, "{d:?}");
    }

    #[test]
    fn no_evidence_means_no_verdict() {
        let t = SequentialTest::default();
        let a = Sums::from_values((0..10).map(|i| f64::from(i % 2)));
        let b = Sums::from_values((0..10).map(|_| 1.0));
        let d = t.compare(&a, &b, true).unwrap();
        assert_eq!(t.verdict(&a, &b, Some(&d)), Verdict::InsufficientData);
        let a = Sums::from_values((0..200).map(|i| f64::from(i % 2)));
        let b = Sums::from_values((0..200).map(|i| f64::from(i % 2)));
        let d = t.compare(&a, &b, true).unwrap();
        assert_eq!(d.estimate, 0.0);
        assert_eq!(d.p_value, 1.0);
        assert_eq!(t.verdict(&a, &b, Some(&d)), Verdict::NoDifferenceYet);
    }

    /// xorshift64*: a seeded generator for the simulation below (no dependency needed).
    struct Rng(u64);
    impl Rng {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Peeking after every 10 runs per arm up to 1,000 runs, with no true difference: the
    /// share of sequences that ever reject stays near or below alpha. A fixed-horizon z-test
    /// peeked at the same points rejects far more often (shown for contrast).
    #[test]
    fn repeated_looks_do_not_inflate_false_positives() {
        let t = SequentialTest::default();
        let (sims, looks, per_look) = (400, 100, 10);
        let (mut msprt_rejections, mut naive_rejections) = (0, 0);
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..sims {
            let (mut a, mut b) = (Sums::default(), Sums::default());
            let (mut msprt, mut naive) = (false, false);
            for _ in 0..looks {
                for _ in 0..per_look {
                    let x = f64::from(u8::from(rng.uniform() < 0.6));
                    let y = f64::from(u8::from(rng.uniform() < 0.6));
                    a = a.push(x);
                    b = b.push(y);
                }
                let d = t.compare(&a, &b, true).unwrap();
                msprt |= t.verdict(&a, &b, Some(&d)) == Verdict::Better
                    || t.verdict(&a, &b, Some(&d)) == Verdict::Worse;
                let se = (0.24 / a.n + 0.24 / b.n).sqrt();
                naive |= a.n >= 30.0 && (d.estimate / se).abs() > Z_95;
            }
            msprt_rejections += u32::from(msprt);
            naive_rejections += u32::from(naive);
        }
        let msprt_rate = f64::from(msprt_rejections) / f64::from(sims);
        let naive_rate = f64::from(naive_rejections) / f64::from(sims);
        // 400 sequences: a true rate of 0.05 exceeds 0.08 with probability < 1 %.
        assert!(msprt_rate <= 0.08, "mSPRT false-positive rate {msprt_rate}");
        assert!(
            naive_rate > 0.15,
            "the naive peeking test should inflate: {naive_rate}"
        );
    }

    #[test]
    fn detects_a_real_difference() {
        let t = SequentialTest::default();
        let mut rng = Rng(42);
        let (mut a, mut b) = (Sums::default(), Sums::default());
        for _ in 0..1000 {
            let x = f64::from(u8::from(rng.uniform() < 0.5));
            let y = f64::from(u8::from(rng.uniform() < 0.7));
            a = a.push(x);
            b = b.push(y);
        }
        let d = t.compare(&a, &b, true).unwrap();
        assert_eq!(t.verdict(&a, &b, Some(&d)), Verdict::Better, "{d:?}");
        assert!(d.low < 0.2 && d.high > 0.2, "{d:?}");
        let d = t.compare(&b, &a, true).unwrap();
        assert_eq!(t.verdict(&b, &a, Some(&d)), Verdict::Worse);
    }
}
