"""The shared redaction corpus (testdata/redaction/ at the repository root, the same files the
TypeScript package's tests run): every secret is redacted, every benign text is left unchanged.
The files must be there: a missing corpus fails, it is never skipped."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from agent_lightning import Redactor

from .helpers import REPO_ROOT

CORPUS = Path(os.environ.get("REDACTION_CORPUS_DIR") or REPO_ROOT / "testdata" / "redaction")


def load(name: str) -> list[dict[str, Any]]:
    path = CORPUS / name
    assert path.is_file(), f"the shared redaction corpus is missing: {path}"
    data = json.loads(path.read_text("utf-8"))
    assert isinstance(data, list) and data, f"{path} must be a non-empty JSON array"
    return data


def test_every_secret_is_redacted() -> None:
    redactor = Redactor(True)
    missed = []
    for case in load("secrets.json"):
        out = redactor.text(case["text"])
        if case["secret"] in out:
            missed.append(f"{case['kind']}: {out[:300]!r}")
    assert not missed, f"recall below 100%: {len(missed)} secret(s) left in clear:\n" + "\n".join(missed)


def test_benign_text_is_unchanged() -> None:
    redactor = Redactor(True)
    changed = []
    for case in load("benign.json"):
        out = redactor.text(case["text"])
        if out != case["text"]:
            changed.append(f"{case['kind']}: {out[:300]!r}")
    assert not changed, f"{len(changed)} benign text(s) changed:\n" + "\n".join(changed)


@pytest.mark.parametrize("field", ["toolInput", "toolOutput", "error"])
def test_secrets_never_leave_through_a_step(field: str) -> None:
    """The same corpus through the whole step preparation (what is sent and what is spooled)."""
    from agent_lightning import Lightning

    lightning = Lightning(
        collector_url="http://127.0.0.1:9", api_key="k", agent_id="a", spool=False, handle_process_exit=False
    )
    try:
        for case in load("secrets.json"):
            value: Any = case["text"] if field == "error" else {"text": case["text"]}
            step = lightning._prepare("step", {"stepNumber": 1, "toolName": "Bash", field: value})
            assert case["secret"] not in json.dumps(step, ensure_ascii=False), case["kind"]
    finally:
        lightning.shutdown_sync(0)
