//! `lightning rollout`: canary a prompt version, watch its comparison with the promoted one,
//! promote it on evidence or roll it back (docs/rollout.md).

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use lightning_core::{
    rollout::{Comparison, Decision, EventKind, NewRollout, PromptEvent, Rollout},
    stats::{SequentialTest, Verdict},
};
use lightning_store::{compare_rollout, end_rollout_with_evidence, promote_with_history, Store};

use crate::store_args::StoreArgs;

#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    command: RolloutCommand,
}

#[derive(Debug, Args)]
struct Who {
    /// Who decides (stored with the decision). Default: cli:$USER.
    #[arg(long)]
    actor: Option<String>,
    /// Why (stored with the decision).
    #[arg(long)]
    reason: Option<String>,
}

impl Who {
    fn decision(self) -> Decision {
        let actor = self.actor.unwrap_or_else(|| {
            format!(
                "cli:{}",
                std::env::var("USER").unwrap_or_else(|_| "unknown".into())
            )
        });
        Decision {
            actor: Some(actor),
            reason: self.reason,
            evidence: None,
        }
    }
}

#[derive(Debug, Subcommand)]
enum RolloutCommand {
    /// Put a registered version in canary beside the promoted one (or change its percentage).
    Start {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        agent: String,
        #[arg(long)]
        version: i64,
        /// Share of units (sessions, users, processes) that get the canary, 0–100.
        #[arg(long)]
        percent: f64,
        /// Let the collector end the canary as soon as it is significantly worse.
        #[arg(long)]
        auto_rollback: bool,
        /// What to compare: success, or score:<name>.
        #[arg(long, default_value = "success")]
        reward: String,
        #[command(flatten)]
        who: Who,
    },
    /// Show the canary and its comparison with the baseline since it started.
    Status {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        agent: String,
        /// Print the comparison as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Promote the canary: refused unless it is significantly better (or with --force).
    Promote {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        agent: String,
        /// Promote without significant evidence (the comparison is still stored).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        who: Who,
    },
    /// End the canary as rolled back: every unit gets the promoted version again.
    Rollback {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        agent: String,
        #[command(flatten)]
        who: Who,
    },
    /// One pass of the automatic guard over every canary started with --auto-rollback (the
    /// collector runs it every --rollout-guard-interval seconds).
    Check {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The agent's prompt decisions, newest first.
    Events {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        agent: String,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: RolloutArgs) -> anyhow::Result<()> {
    let test = SequentialTest::default();
    match args.command {
        RolloutCommand::Start {
            store,
            agent,
            version,
            percent,
            auto_rollback,
            reward,
            who,
        } => {
            let store = store.open().await?;
            let decision = who.decision();
            let body = NewRollout {
                percent,
                auto_rollback,
                reward: Some(reward),
                actor: decision.actor,
                reason: decision.reason,
            };
            body.validate()?;
            let (rollout, event) = store.start_rollout(&agent, version, &body).await?;
            let verb = if event.kind == EventKind::RolloutStarted {
                "started"
            } else {
                "updated"
            };
            println!(
                "rollout {verb}: agent {agent}, version {} at {}% against {} (reward {}, auto-rollback {})",
                rollout.version,
                rollout.percent,
                baseline_name(&rollout),
                rollout.reward,
                if rollout.auto_rollback { "on" } else { "off" }
            );
        }
        RolloutCommand::Status { store, agent, json } => {
            let store = store.open().await?;
            let rollout = active(&*store, &agent).await?;
            let comparison = compare_rollout(&*store, &rollout, test).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&comparison)?);
            } else {
                println!("{}", describe(&rollout, &comparison));
            }
        }
        RolloutCommand::Promote {
            store,
            agent,
            force,
            who,
        } => {
            let store = store.open().await?;
            let rollout = active(&*store, &agent).await?;
            let comparison = compare_rollout(&*store, &rollout, test).await?;
            println!("{}", describe(&rollout, &comparison));
            if !comparison.promotable() && !force {
                bail!(
                    "not promoted: the canary is not significantly better ({}); keep collecting runs, \
                     or pass --force",
                    verdict_text(comparison.verdict)
                );
            }
            let mut decision = who.decision();
            decision.evidence = Some(serde_json::to_value(&comparison)?);
            promote_with_history(&*store, &agent, rollout.version, decision).await?;
            println!("promoted version {} of agent {agent}", rollout.version);
        }
        RolloutCommand::Rollback { store, agent, who } => {
            let store = store.open().await?;
            let rollout = active(&*store, &agent).await?;
            let event = end_rollout_with_evidence(
                &*store,
                &agent,
                rollout.version,
                EventKind::RolledBack,
                who.decision(),
            )
            .await?
            .context("the rollout ended concurrently")?;
            println!(
                "rolled back version {} of agent {agent} ({})",
                rollout.version, event.actor
            );
        }
        RolloutCommand::Check { store } => {
            let store = store.open().await?;
            let n = lightning_collector::rollout_guard::check_once(&*store, test).await;
            println!("rollout guard: {n} canary(ies) rolled back");
        }
        RolloutCommand::Events {
            store,
            agent,
            limit,
            json,
        } => {
            let store = store.open().await?;
            let events = store.list_events(&agent, limit.clamp(1, 1000)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&events)?);
            } else {
                for e in &events {
                    println!("{}", event_line(e));
                }
            }
        }
    }
    Ok(())
}

async fn active(store: &dyn Store, agent: &str) -> anyhow::Result<Rollout> {
    store
        .get_rollout(agent)
        .await?
        .with_context(|| format!("agent {agent:?} has no active rollout"))
}

fn baseline_name(r: &Rollout) -> String {
    r.baseline_version.map_or_else(
        || "the agent's own prompt".into(),
        |v| format!("promoted version {v}"),
    )
}

fn verdict_text(v: Verdict) -> &'static str {
    match v {
        Verdict::InsufficientData => "not enough runs yet",
        Verdict::NoDifferenceYet => "no significant difference yet",
        Verdict::Better => "canary significantly better",
        Verdict::Worse => "canary significantly worse",
    }
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{v:.digits$}"))
}

/// The comparison as a small table, with the verdict and the method.
pub fn describe(rollout: &Rollout, c: &Comparison) -> String {
    let mut out = format!(
        "agent {}: version {} at {}% vs {} since {} (reward {})\n\n",
        rollout.agent_id,
        rollout.version,
        rollout.percent,
        baseline_name(rollout),
        rollout.started_at.format("%Y-%m-%d %H:%M UTC"),
        c.reward
    );
    out.push_str(&format!(
        "{:<10} {:>6} {:>8} {:>24} {:>10} {:>12} {:>7}\n",
        "version", "runs", "rewarded", "reward (95% CI)", "cost $", "duration ms", "steps"
    ));
    for (arm, label) in c.arms.iter().zip(["baseline", "canary"]) {
        let reward = arm.reward.map_or_else(
            || "—".into(),
            |e| format!("{:.3} [{:.3}, {:.3}]", e.value, e.low, e.high),
        );
        out.push_str(&format!(
            "{:<10} {:>6} {:>8} {:>24} {:>10} {:>12} {:>7}\n",
            format!("{} {label}", arm.version),
            arm.runs,
            arm.rewarded,
            reward,
            fmt_opt(arm.mean_cost_usd, 4),
            fmt_opt(arm.mean_duration_ms, 0),
            fmt_opt(arm.mean_steps, 1)
        ));
    }
    match &c.difference {
        Some(d) => out.push_str(&format!(
            "\ncanary − baseline: {:+.3} (always-valid 95% CI {:+.3} to {:+.3}, p = {:.4})\n",
            d.estimate, d.low, d.high, d.p_value
        )),
        None => out.push_str("\ncanary − baseline: no rewarded runs in both arms yet\n"),
    }
    out.push_str(&format!(
        "verdict: {} (mSPRT, alpha {}, tau {}, at least {} rewarded runs per arm)",
        verdict_text(c.verdict),
        c.method.alpha,
        c.method.tau,
        c.method.min_runs
    ));
    out
}

fn event_line(e: &PromptEvent) -> String {
    format!(
        "{}  {:<16} version {:<4} by {:<16} {}",
        e.created_at.format("%Y-%m-%d %H:%M:%S"),
        e.kind.as_str(),
        e.version.map_or_else(|| "—".into(), |v| v.to_string()),
        e.actor,
        e.reason.as_deref().unwrap_or("")
    )
}
