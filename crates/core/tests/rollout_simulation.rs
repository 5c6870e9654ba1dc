//! Monte Carlo figures of the rollout decisions, from the real code: each simulated run gets its
//! arm from `in_canary` (the assignment route's hash, a fresh unit per run as the SDKs' default
//! unit), and every `LOOK` runs the comparison `compare_arms` builds (the one the API, the CLI
//! and the guard use) is checked against the guard's rule (`guard_rolls_back`) and the promote
//! rule (`promotable`). Seeded, so the figures are the same on every run; printed with
//! `cargo nextest run -p lightning-core --test rollout_simulation --no-capture` and recorded in
//! docs/rollout.md.

use chrono::Utc;
use lightning_core::{
    rollout::{compare_arms, in_canary, ArmData, Reward, Rollout},
    stats::{wilson, Estimate, SequentialTest, Sums, Z_95},
};
use uuid::Uuid;

/// Runs between two looks (the guard's or the operator's).
const LOOK: usize = 10;

/// xorshift64*: seeded outcomes without a dependency.
struct Rng(u64);
impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn rollout(percent: f64, sim: usize) -> Rollout {
    let now = Utc::now();
    Rollout {
        agent_id: "sim".into(),
        // a new rollout per simulated sequence: assignments are independent across them
        rollout_id: Uuid::from_u128(0x5eed_0000_0000_0000_0000_0000_0000_0000 + sim as u128),
        version: 2,
        baseline_version: Some(1),
        percent,
        auto_rollback: true,
        reward: "success".into(),
        started_at: now,
        updated_at: now,
    }
}

fn arm(s: Sums) -> ArmData {
    ArmData {
        runs: s.n as i64,
        rewards: s,
        mean_cost_usd: None,
        mean_duration_ms: None,
        mean_steps: None,
        tools: Vec::new(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Promoted(usize),
    RolledBack(usize),
    Undecided,
}

/// One rollout: runs with success rates `rates = (baseline, canary)` until a decision or
/// `max_runs`, the guard and the promote rule checked every `LOOK` runs. With `naive`, also
/// whether a fixed-horizon two-sided z-test at 95 % would have fired at some look (≥ 30 per arm).
fn simulate(
    sim: usize,
    rng: &mut Rng,
    percent: f64,
    rates: (f64, f64),
    max_runs: usize,
) -> (Outcome, bool) {
    let r = rollout(percent, sim);
    let (mut base, mut canary) = (Sums::default(), Sums::default());
    let mut naive = false;
    for run in 1..=max_runs {
        let unit = format!("unit-{sim}-{run}");
        let in_canary = in_canary(&r, &unit);
        let rate = if in_canary { rates.1 } else { rates.0 };
        let reward = f64::from(u8::from(rng.uniform() < rate));
        if in_canary {
            canary = canary.push(reward);
        } else {
            base = base.push(reward);
        }
        if run % LOOK != 0 {
            continue;
        }
        let c = compare_arms(
            "sim",
            &Reward::Success,
            None,
            ("1".into(), arm(base)),
            ("2".into(), arm(canary)),
            SequentialTest::default(),
        );
        if let (Some(d), true) = (c.difference, base.n >= 30.0 && canary.n >= 30.0) {
            let pooled = (base.sum + canary.sum) / (base.n + canary.n);
            let se = (pooled * (1.0 - pooled) * (1.0 / base.n + 1.0 / canary.n)).sqrt();
            naive |= se > 0.0 && (d.estimate / se).abs() > Z_95;
        }
        if c.guard_rolls_back() {
            return (Outcome::RolledBack(run), naive);
        }
        if c.promotable() {
            return (Outcome::Promoted(run), naive);
        }
    }
    (Outcome::Undecided, naive)
}

fn rate(k: usize, n: usize) -> Estimate {
    wilson(k as f64, n as f64, Z_95).expect("n > 0")
}

fn pct(e: Estimate) -> String {
    format!(
        "{:.1} % (95 % Wilson {:.1}–{:.1} %)",
        e.value * 100.0,
        e.low * 100.0,
        e.high * 100.0
    )
}

/// Median and 90th percentile (nearest rank) of the runs to a decision.
fn quantiles(mut runs: Vec<usize>) -> (usize, usize, usize, usize) {
    runs.sort_unstable();
    let at = |q: f64| runs[((q * runs.len() as f64).ceil() as usize).clamp(1, runs.len()) - 1];
    (at(0.5), at(0.9), runs[0], runs[runs.len() - 1])
}

struct Tally {
    promoted: Vec<usize>,
    rolled_back: Vec<usize>,
    naive: usize,
}

fn run_scenario(seed: u64, sims: usize, percent: f64, rates: (f64, f64), max_runs: usize) -> Tally {
    let mut rng = Rng(seed);
    let mut t = Tally {
        promoted: Vec::new(),
        rolled_back: Vec::new(),
        naive: 0,
    };
    for sim in 0..sims {
        let (outcome, naive) = simulate(sim, &mut rng, percent, rates, max_runs);
        t.naive += usize::from(naive);
        match outcome {
            Outcome::Promoted(n) => t.promoted.push(n),
            Outcome::RolledBack(n) => t.rolled_back.push(n),
            Outcome::Undecided => {}
        }
    }
    t
}

#[test]
fn no_true_difference_rarely_decides_under_repeated_looks() {
    // 50 % canary, both arms succeed 60 % of the time, a look every 10 runs up to 1,000 runs
    // (≈ 500 per arm: 100 looks). Any promotion or rollback is a false positive.
    let sims = 400;
    let t = run_scenario(0x9E37_79B9_7F4A_7C15, sims, 50.0, (0.6, 0.6), 1_000);
    let fp = rate(t.promoted.len() + t.rolled_back.len(), sims);
    let naive = rate(t.naive, sims);
    println!(
        "no difference, 50 % canary, p = 0.6, look every {LOOK} runs to 1,000 runs, n = {sims}: \
         false decisions {} ({} promoted, {} rolled back); fixed-horizon z-test peeked at the same looks: {}",
        pct(fp),
        t.promoted.len(),
        t.rolled_back.len(),
        pct(naive)
    );
    assert!(fp.high < 0.10, "false-positive rate {fp:?}");
    assert!(
        naive.low > fp.high,
        "the peeked fixed-horizon test inflates: {naive:?}"
    );

    // The same with a 10 % canary and 5,000 runs (≈ 500 canary runs): unequal arms.
    let t = run_scenario(0xD1B5_4A32_D192_ED03, sims, 10.0, (0.6, 0.6), 5_000);
    let fp = rate(t.promoted.len() + t.rolled_back.len(), sims);
    println!(
        "no difference, 10 % canary, p = 0.6, look every {LOOK} runs to 5,000 runs, n = {sims}: \
         false decisions {} ({} promoted, {} rolled back)",
        pct(fp),
        t.promoted.len(),
        t.rolled_back.len()
    );
    assert!(fp.high < 0.10, "false-positive rate at 10 %: {fp:?}");
}

#[test]
fn a_better_canary_is_promoted_and_a_worse_one_rolled_back() {
    let sims = 400;
    for (name, rates, seed) in [
        (
            "+10 points (0.60 → 0.70)",
            (0.6, 0.7),
            0xA076_1D64_78BD_642F_u64,
        ),
        (
            "+35 points (0.50 → 0.85)",
            (0.5, 0.85),
            0xE703_7ED1_A0B4_28DB,
        ),
    ] {
        let max_runs = 20_000;
        let t = run_scenario(seed, sims, 50.0, rates, max_runs);
        let promoted = rate(t.promoted.len(), sims);
        let wrong = rate(t.rolled_back.len(), sims);
        let (median, p90, min, max) = quantiles(t.promoted.clone());
        println!(
            "better canary {name}, 50 % canary, n = {sims}: promoted {} within {max_runs} runs, \
             after median {median} runs (p90 {p90}, range {min}–{max}); rolled back instead: {}",
            pct(promoted),
            pct(wrong)
        );
        assert!(promoted.low > 0.95, "{name}: promoted {promoted:?}");
        assert!(wrong.high < 0.05, "{name}: rolled back {wrong:?}");
    }
    for (name, rates, seed) in [
        (
            "−10 points (0.60 → 0.50)",
            (0.6, 0.5),
            0x8EBC_6AF0_9C88_C6E3_u64,
        ),
        (
            "−40 points (0.85 → 0.45)",
            (0.85, 0.45),
            0x5899_65CC_7537_4CC3,
        ),
    ] {
        let max_runs = 20_000;
        let t = run_scenario(seed, sims, 50.0, rates, max_runs);
        let rolled = rate(t.rolled_back.len(), sims);
        let wrong = rate(t.promoted.len(), sims);
        let (median, p90, min, max) = quantiles(t.rolled_back.clone());
        println!(
            "worse canary {name}, 50 % canary, n = {sims}: rolled back by the guard {} within \
             {max_runs} runs, after median {median} runs (p90 {p90}, range {min}–{max}); promoted instead: {}",
            pct(rolled),
            pct(wrong)
        );
        assert!(rolled.low > 0.95, "{name}: rolled back {rolled:?}");
        assert!(wrong.high < 0.05, "{name}: promoted {wrong:?}");
    }
}
