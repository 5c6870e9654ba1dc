"""`lightning.score()` against the real `lightning` collector binary: typed scores after a run, a
repeated id that updates, a comment over the collector's limit, and a score made while the
collector is down that is delivered once it is up (contract: docs/api.md "Scores")."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from agent_lightning import Lightning
from agent_lightning._instrument import MAX_SCORE_COMMENT_CHARS

from .helpers import Collector, free_port, rand
from .sim import session


def opts(url: str, key: str, agent: str, **extra: Any) -> dict[str, Any]:
    return {
        "collector_url": url,
        "api_key": key,
        "agent_id": agent,
        "retry_base_delay": 0.02,
        "flush_interval": 0.05,
        "handle_process_exit": False,
        **extra,
    }


def scores_of(c: Collector, tid: str) -> list[dict[str, Any]]:
    return list(c.get(f"/api/trajectories/{tid}/scores")["scores"])


async def test_score_after_a_run_is_stored_typed_and_a_repeated_id_updates(collector: Collector) -> None:
    a = f"py-score-{rand()}"
    lightning = Lightning(**opts(collector.url, collector.api_key, a, spool=False))
    await session(lightning, 2)
    tid = lightning.current_trajectory_id()
    assert tid is not None
    numeric = lightning.score("quality", 0.75, comment="decent")
    boolean = lightning.score("passed", True, source="code", step_number=1, metadata={"suite": "unit"})
    label = lightning.score("verdict", "needs-work", source="human", trajectory_id=tid)
    long = lightning.score("rationale", 0.5, comment="why " * 6_000)  # 24,000 characters
    assert None not in (numeric, boolean, label, long)
    assert await lightning.flush(15)
    assert lightning.stats().dropped == 0, "the collector refused no score"

    by = {s["id"]: s for s in scores_of(collector, tid)}
    assert len(by) == 4
    n = by[numeric]
    assert (n["name"], n["value"], n["dataType"], n["source"], n["comment"], n["trajectoryId"]) == (
        "quality",
        0.75,
        "numeric",
        "sdk",
        "decent",
        tid,
    )
    b = by[boolean]
    assert (b["value"], b["dataType"], b["source"], b["stepNumber"], b["metadata"]) == (
        True,
        "boolean",
        "code",
        1,
        {"suite": "unit"},
    )
    assert (by[label]["value"], by[label]["dataType"], by[label]["source"]) == ("needs-work", "categorical", "human")
    cut = by[long]["comment"]
    assert cut.startswith("why why ") and len(cut) <= MAX_SCORE_COMMENT_CHARS
    assert re.search(r"…\[truncated: \d+ of 24000 characters omitted\]$", cut), cut[-80:]
    # the detail carries them too
    assert sorted(s["id"] for s in collector.trajectory(tid)["scores"]) == sorted(by)

    # the same id again (a retry, a replay, a correction): updated, never duplicated
    assert lightning.score("quality", 0.9, id=numeric, comment="better on review") == numeric
    assert await lightning.flush(15)
    again = {s["id"]: s for s in scores_of(collector, tid)}
    assert len(again) == 4
    assert (again[numeric]["value"], again[numeric]["comment"]) == (0.9, "better on review")
    await lightning.shutdown()


async def test_score_while_the_collector_is_down_is_delivered_once_it_is_up(tmp_path: Path) -> None:
    a = f"py-score-outage-{rand()}"
    c = Collector().start(free_port())
    try:
        lightning = Lightning(**opts(c.url, c.api_key, a, spool_dir=str(tmp_path)))
        await session(lightning, 1)
        assert await lightning.flush(15)
        tid = lightning.current_trajectory_id()
        assert tid is not None
        c.stop()
        score_id = lightning.score("quality", 4, comment="scored during the outage")
        assert score_id is not None
        assert not await lightning.flush(0.5), "nothing can be delivered while the collector is down"
        stats = lightning.stats()
        assert stats.failed > 0 and stats.queued > 0, stats
        c.start(c.port)
        assert await lightning.flush(15)
        await lightning.shutdown()
        scores = scores_of(c, tid)
        assert [(s["id"], s["value"], s["comment"]) for s in scores] == [(score_id, 4, "scored during the outage")]
        assert lightning.stats().dropped == 0
    finally:
        c.dispose()
