//! GEPA-class search (`--strategy gepa`), after Agrawal et al. 2025, "GEPA: Reflective Prompt
//! Evolution Can Outperform Reinforcement Learning", for a single system prompt.
//!
//! The pool starts with the seed, scored on the whole validation set. Each iteration proposes
//! one candidate, `--rounds × --beam × --branch` iterations in all (the number of children APO
//! would propose), or until a budget runs out:
//! 1. **Parent:** drawn from the per-instance Pareto front of the pool over the validation
//!    examples, with probability proportional to the instances it leads ([`crate::pareto`]).
//! 2. **Reflective minibatch:** `--minibatch` training examples (failures first, round-robin
//!    over failure types); the parent is run on them, and the critique reads the parent's
//!    *own* rollouts: reward, evaluator feedback, evaluation errors and the rollout's
//!    trajectory when the evaluator reported one, next to the recorded task. Each example is
//!    capped at [`EXAMPLE_TOKEN_CAP`] tokens (see [`cap_tokens`]).
//! 3. **Proposal:** a critique and an edit, the (critique, edit) template pair cycling per call
//!    through the standard, focused and conservative one-change templates
//!    ([`crate::templates::Templates::pair`]); or, after a proposal joined the pool, a
//!    **merge** of two front members that lead on different instances: a three-way line merge
//!    against their nearest common ancestor ([`crate::merge`]), no LLM call.
//! 4. **Gate:** the child on the same minibatch must beat its parent strictly (a merge must
//!    match the better of its two parents).
//! 5. **Validation allocation:** a child that passes races its parent on growing prefixes of
//!    the (seeded, shuffled) validation set, the first `max(minibatch, |val|/4)` examples, then
//!    doubling; it stops at the first prefix where it is behind its parent (successive halving
//!    against the parent). Only children scored on the whole validation set join the pool.
//!
//! The best candidate is the pool's highest validation mean (ties: the earlier); it and the
//! seed are scored once on the test set by the caller, as for APO.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use lightning_core::CandidateStatus;
use rand::Rng;
use uuid::Uuid;

use crate::{
    apo::{new_record, Budget, BudgetExhausted, Cand, Progressing, Search, Shared},
    merge, pareto,
    rollout_text::cap_tokens,
    templates::{extract_prompt, placeholders, render},
    Result,
};

/// Tokens of evidence per example in a reflective critique.
pub const EXAMPLE_TOKEN_CAP: usize = 700;

/// One proposal's outcome, for the loop.
enum Proposal {
    /// A child to gate: its index, the parents it must beat, the minibatch.
    Child(usize, Vec<usize>, Vec<usize>),
    /// Nothing to gate (an LLM call failed, or the child was rejected unevaluated).
    Nothing,
    /// A budget ran out.
    Stop(String),
}

struct Loop {
    /// Candidates scored on the whole validation set.
    pool: Vec<usize>,
    tried_merges: HashSet<(usize, usize)>,
    /// A merge is attempted after a proposal joined the pool.
    merge_due: bool,
    proposals: usize,
}

pub(crate) async fn search(
    s: &Search<'_>,
    shared: &Shared<'_>,
    st: &mut Progressing,
) -> Result<()> {
    let cfg = &s.config;
    let iterations = cfg.rounds * cfg.slots_per_round();
    s.progress.round_started(1, 1, iterations as u64);
    let mut lp = Loop {
        pool: vec![0],
        tried_merges: HashSet::new(),
        merge_due: false,
        proposals: 0,
    };
    for it in 1..=iterations {
        if shared.exhausted.load(Ordering::SeqCst) {
            break;
        }
        let proposal = match lp
            .merge_due
            .then(|| merge_candidate(s, shared, st, &mut lp, it))
        {
            Some(Some(p)) => p,
            _ => reflect(s, shared, st, &mut lp, it).await?,
        };
        lp.merge_due = false;
        // The new candidate is stored before it is evaluated, so its evaluations can be resumed.
        s.save(&st.cands, shared).await?;
        match proposal {
            Proposal::Stop(why) => {
                st.stop_reason = Some(why);
                break;
            }
            Proposal::Nothing => {}
            Proposal::Child(child, parents, minibatch) => {
                if let Err(BudgetExhausted(why)) =
                    gate_and_validate(s, shared, st, &mut lp, child, &parents, &minibatch).await?
                {
                    st.stop_reason = Some(why.to_string());
                    break;
                }
            }
        }
        st.rounds_completed = it;
        select(s, shared, st, &lp);
        s.save(&st.cands, shared).await?;
        s.progress.step();
    }
    if st.stop_reason.is_none() && shared.exhausted.load(Ordering::SeqCst) {
        st.stop_reason = Some("budget exhausted".into());
    }
    select(s, shared, st, &lp);
    s.progress
        .round_finished(1, st.cands[st.beam[0]].rec.validation_score);
    Ok(())
}

/// Validation rewards of the pool, row per pool member.
fn table(s: &Search<'_>, shared: &Shared<'_>, st: &Progressing, pool: &[usize]) -> Vec<Vec<f64>> {
    pool.iter()
        .map(|&c| {
            shared
                .rewards(st.cands[c].prompt_id, &s.dataset.validation)
                .unwrap_or_default()
        })
        .collect()
}

/// A reflective proposal from a Pareto-sampled parent.
async fn reflect(
    s: &Search<'_>,
    shared: &Shared<'_>,
    st: &mut Progressing,
    lp: &mut Loop,
    it: usize,
) -> Result<Proposal> {
    let table = table(s, shared, st, &lp.pool);
    let u: f64 = st.rng.gen();
    let parent = lp.pool[pareto::sample_parent(&table, u).unwrap_or(0)];
    let slots = s.config.slots_per_round();
    let minibatch = s.draw_minibatch(&mut st.failure_groups, (it - 1) % slots, &mut st.rng);
    if !shared.reserve_llm(2) {
        return Ok(Proposal::Stop("LLM call budget exhausted".into()));
    }
    let pid = st.cands[parent].prompt_id;
    let pairs: Vec<(usize, usize)> = minibatch.iter().map(|&e| (pid, e)).collect();
    if let Err(BudgetExhausted(why)) = shared.evaluate(&pairs, Budget::Capped).await? {
        return Ok(Proposal::Stop(why.into()));
    }
    let parent_prompt = shared.prompt(pid);
    let (critique_t, edit_t, name) = s.templates.pair(lp.proposals);
    lp.proposals += 1;
    let examples = reflective_examples(s, shared, pid, &minibatch);
    let critique_prompt = render(
        critique_t,
        &[
            ("prompt", &parent_prompt),
            ("examples", examples.trim_end()),
            ("analysis", s.analysis.trim_end()),
        ],
    );
    let Some(critique) = shared.ask(critique_prompt).await? else {
        st.skipped_branches += 1;
        return Ok(Proposal::Nothing);
    };
    let critique = format!("[{name}] {}", critique.trim());
    let edit_prompt = render(
        edit_t,
        &[("prompt", &parent_prompt), ("critique", &critique)],
    );
    let Some(edited) = shared.ask(edit_prompt).await? else {
        st.skipped_branches += 1;
        return Ok(Proposal::Nothing);
    };
    let text = extract_prompt(&edited);
    if text.trim().is_empty() {
        st.skipped_branches += 1;
        return Ok(Proposal::Nothing);
    }
    // An earlier candidate's prompt again: that candidate is gated again, on this minibatch
    // and against this parent (its cached evaluations are reused), unless it is in the pool.
    if text.trim() != parent_prompt.trim() && shared.is_known(&text) {
        // (Known only from an interrupted run's evaluations: a new candidate, below.)
        if let Some(earlier) = st
            .cands
            .iter()
            .position(|c| *shared.prompt(c.prompt_id) == *text)
        {
            return Ok(if lp.pool.contains(&earlier) {
                Proposal::Nothing
            } else {
                Proposal::Child(earlier, vec![parent], minibatch)
            });
        }
    }
    let rejection = if text.trim() == parent_prompt.trim() {
        Some("identical to its parent")
    } else if !placeholders(&parent_prompt).is_subset(&placeholders(&text)) {
        Some("dropped a {placeholder} of its parent")
    } else {
        None
    };
    let child = add_candidate(s, shared, st, parent, it, &text, critique, rejection);
    Ok(match rejection {
        None => Proposal::Child(child, vec![parent], minibatch),
        Some(_) => Proposal::Nothing,
    })
}

/// The critique's evidence: per minibatch example, the recorded task and the parent's own
/// rollout on it, each capped at [`EXAMPLE_TOKEN_CAP`] tokens.
fn reflective_examples(s: &Search<'_>, shared: &Shared<'_>, pid: usize, mb: &[usize]) -> String {
    let mut out = String::new();
    for (k, &e) in mb.iter().enumerate() {
        let ex = &s.dataset.examples[e];
        let mut block = format!("### Run {} of the current prompt\n", k + 1);
        if let Some(ev) = shared.evaluation(pid, e) {
            block.push_str(&format!("Task: {}\n", ex.task));
            if let Some(tt) = &ex.task_type {
                block.push_str(&format!("Task type: {tt}\n"));
            }
            block.push_str(&format!("Reward of the current prompt: {:.2}\n", ev.reward));
            if let Some(f) = &ev.feedback {
                block.push_str(&format!("Evaluator feedback: {f}\n"));
            }
            if let Some(err) = &ev.error {
                block.push_str(&format!("Evaluation error: {err}\n"));
            }
            match &ev.trajectory {
                Some(t) => block.push_str(&format!("Its trajectory:\n{t}\n")),
                None => block.push_str(&format!(
                    "(no trajectory reported; the run recorded earlier with the old prompt:)\n{}",
                    ex.render(s.config.max_actions)
                )),
            }
        } else {
            block.push_str(&ex.render(s.config.max_actions));
        }
        out.push_str(&cap_tokens(&block, EXAMPLE_TOKEN_CAP));
        out.push_str("\n\n");
    }
    out
}

#[allow(
    clippy::too_many_arguments,
    reason = "a candidate record from the parts of one proposal"
)]
fn add_candidate(
    s: &Search<'_>,
    shared: &Shared<'_>,
    st: &mut Progressing,
    parent: usize,
    it: usize,
    text: &str,
    critique: String,
    rejection: Option<&str>,
) -> usize {
    let id = shared.candidate_id_for(text);
    let pid = shared.intern(text, id);
    let critique = match rejection {
        Some(reason) => format!("{critique}\n\n[not evaluated: {reason}]"),
        None => critique,
    };
    let rec = new_record(
        s.run_id,
        id,
        Some(st.cands[parent].rec.id),
        it as i64,
        text,
        Some(critique),
        CandidateStatus::Pruned,
    );
    st.cands.push(Cand {
        rec,
        prompt_id: pid,
    });
    st.cands.len() - 1
}

/// A merge of two front members leading on different instances, if there is an untried pair
/// whose merge differs from both.
fn merge_candidate(
    s: &Search<'_>,
    shared: &Shared<'_>,
    st: &mut Progressing,
    lp: &mut Loop,
    it: usize,
) -> Option<Proposal> {
    let table = table(s, shared, st, &lp.pool);
    loop {
        let tried = &lp.tried_merges;
        let pool = &lp.pool;
        let (x, y) = pareto::merge_pair(&table, &|x, y| tried.contains(&(pool[x], pool[y])))?;
        let (a, b) = (lp.pool[x], lp.pool[y]);
        lp.tried_merges.insert((a, b));
        let ancestor = common_ancestor(st, a, b)?;
        let prompt = |c: usize| shared.prompt(st.cands[c].prompt_id);
        let Some(text) = merge::merge(&prompt(ancestor), &prompt(a), &prompt(b)) else {
            continue;
        };
        let in_search = st
            .cands
            .iter()
            .any(|c| *shared.prompt(c.prompt_id) == *text);
        if in_search || !placeholders(&prompt(a)).is_subset(&placeholders(&text)) {
            continue;
        }
        let minibatch = s.draw_minibatch(
            &mut st.failure_groups,
            (it - 1) % s.config.slots_per_round(),
            &mut st.rng,
        );
        let critique = format!(
            "[merge] lines of candidates #{a} and #{b} against their common ancestor #{ancestor}"
        );
        let child = add_candidate(s, shared, st, a, it, &text, critique, None);
        return Some(Proposal::Child(child, vec![a, b], minibatch));
    }
}

/// The nearest candidate that is an ancestor of (or equal to) both.
fn common_ancestor(st: &Progressing, a: usize, b: usize) -> Option<usize> {
    let index: HashMap<Uuid, usize> = st
        .cands
        .iter()
        .enumerate()
        .map(|(i, c)| (c.rec.id, i))
        .collect();
    let chain = |mut c: usize| {
        let mut out = vec![c];
        while let Some(p) = st.cands[c].rec.parent_id.and_then(|p| index.get(&p)) {
            c = *p;
            out.push(c);
        }
        out
    };
    let of_b: HashSet<usize> = chain(b).into_iter().collect();
    chain(a).into_iter().find(|c| of_b.contains(c))
}

/// The gate on the minibatch, then the race on validation prefixes against the parents.
async fn gate_and_validate(
    s: &Search<'_>,
    shared: &Shared<'_>,
    st: &mut Progressing,
    lp: &mut Loop,
    child: usize,
    parents: &[usize],
    minibatch: &[usize],
) -> Result<std::result::Result<(), BudgetExhausted>> {
    let cpid = st.cands[child].prompt_id;
    let ppids: Vec<usize> = parents.iter().map(|&p| st.cands[p].prompt_id).collect();
    let pairs: Vec<(usize, usize)> = std::iter::once(cpid)
        .chain(ppids.iter().copied())
        .flat_map(|p| minibatch.iter().map(move |&e| (p, e)))
        .collect();
    if let Err(b) = shared.evaluate(&pairs, Budget::Capped).await? {
        return Ok(Err(b));
    }
    let child_mb = shared.score(cpid, minibatch).unwrap_or(0.0);
    st.cands[child].rec.minibatch_score = Some(child_mb);
    st.cands[child].rec.scores.minibatch = shared.summary(cpid, minibatch);
    let bar = ppids
        .iter()
        .map(|&p| shared.score(p, minibatch).unwrap_or(0.0))
        .fold(f64::NEG_INFINITY, f64::max);
    // A reflective child must beat its parent; a merge must match the better parent.
    let passed = if parents.len() > 1 {
        child_mb >= bar
    } else {
        child_mb > bar
    };
    if !passed {
        return Ok(Ok(()));
    }
    let val_order = st.val_order.clone();
    let total = val_order.len();
    let mut n = s.config.minibatch.max(total.div_ceil(4)).min(total);
    loop {
        let prefix = &val_order[..n];
        let pairs: Vec<(usize, usize)> = prefix.iter().map(|&e| (cpid, e)).collect();
        if let Err(b) = shared.evaluate(&pairs, Budget::Capped).await? {
            return Ok(Err(b));
        }
        if n == total {
            break;
        }
        let mine = shared.score(cpid, prefix).unwrap_or(0.0);
        let theirs = ppids
            .iter()
            .map(|&p| shared.score(p, prefix).unwrap_or(0.0))
            .fold(f64::NEG_INFINITY, f64::max);
        if mine < theirs {
            return Ok(Ok(()));
        }
        n = (n * 2).min(total);
    }
    let val = &s.dataset.validation;
    st.cands[child].rec.validation_score = shared.score(cpid, val);
    shared.note_validation(st.cands[child].rec.validation_score);
    st.cands[child].rec.scores.validation = shared.summary(cpid, val);
    st.cands[child].rec.status = CandidateStatus::Evaluated;
    if !lp.pool.iter().any(|&c| st.cands[c].prompt_id == cpid) {
        lp.pool.push(child);
        lp.merge_due = true;
    }
    Ok(Ok(()))
}

/// The beam as the caller reads it: the best validation mean first, then the rest of the
/// front; front members are `kept`, other pool members `evaluated`.
fn select(s: &Search<'_>, shared: &Shared<'_>, st: &mut Progressing, lp: &Loop) {
    let table = table(s, shared, st, &lp.pool);
    let mean = |c: usize| st.cands[c].rec.validation_score.unwrap_or(0.0);
    let best = lp
        .pool
        .iter()
        .copied()
        .reduce(|a, b| if mean(b) > mean(a) { b } else { a })
        .unwrap_or(0);
    let front: Vec<usize> = pareto::front(&table)
        .into_iter()
        .map(|i| lp.pool[i])
        .collect();
    let mut beam = vec![best];
    beam.extend(front.iter().copied().filter(|&c| c != best));
    for &c in &lp.pool {
        if st.cands[c].rec.status != CandidateStatus::Seed {
            st.cands[c].rec.status = if beam.contains(&c) {
                CandidateStatus::Kept
            } else {
                CandidateStatus::Evaluated
            };
        }
    }
    st.beam = beam;
    for c in st.cands.iter_mut() {
        c.rec.evaluations = shared.covered(c.prompt_id);
    }
}
