"""Which prompt assignment a trajectory records (``promptVersion`` and metadata ``promptAssignment``).

``prompt()`` may be asked for several units before their runs start (a server handling users A
and B), so the assignment is not an instance-wide "last answer": each run records the assignment
it used, decided when its trajectory starts, in this order:

1. the ``assignment`` passed to ``track()``/``query()`` (that run's ``prompt_details()`` result);
2. what an earlier trajectory of the same SDK session recorded;
3. the result whose text is part of the run's system prompt (known from ``track()``/``query()``;
   the longest such text, then the newest), so the version is the one whose text the run used;
4. the only result no trajectory has used yet;
5. several unused results for different units and nothing to tell them apart: the run is
   recorded as ``unattributed`` (no promptVersion) rather than with another unit's version;
6. every result already used (``prompt()`` once, many runs): the newest one.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

MAX_REMEMBERED = 1000


class PromptResult(tuple[str, "str | None", str]):
    """``(text, version, source)`` — unpacks and compares like that tuple — with the rollout
    facts: ``arm`` (``canary``, ``promoted``, ``fallback``, or ``None`` when the collector could
    not be asked), ``unit``, ``rollout_id`` and ``assignment``, what the run that uses the text
    records (pass the whole result to ``track()``/``query()`` as ``assignment=``)."""

    assignment: dict[str, Any]

    def __new__(cls, text: str, version: str | None, source: str, assignment: dict[str, Any]) -> PromptResult:
        self = super().__new__(cls, (text, version, source))
        self.assignment = assignment
        return self

    @property
    def text(self) -> str:
        return self[0]

    @property
    def version(self) -> str | None:
        return self[1]

    @property
    def source(self) -> str:
        return self[2]

    @property
    def arm(self) -> str | None:
        arm = self.assignment.get("arm")
        return arm if arm in ("canary", "promoted", "fallback") else None

    @property
    def unit(self) -> str:
        return str(self.assignment.get("unit", ""))

    @property
    def rollout_id(self) -> str | None:
        rid = self.assignment.get("rolloutId")
        return rid if isinstance(rid, str) else None


@dataclass
class _Remembered:
    text: str
    version: str | None
    assignment: dict[str, Any]
    used: bool = False


_Attribution = tuple["str | None", dict[str, Any]]


class PromptAssignments:
    """``prompt()`` results per unit and the attribution of new trajectories. Not thread-safe on
    its own: the instrumentation calls it under its lock."""

    def __init__(self) -> None:
        self._by_unit: collections.OrderedDict[str, _Remembered] = collections.OrderedDict()
        self._by_session: collections.OrderedDict[str, _Attribution] = collections.OrderedDict()
        self.latest_version: str | None = None

    def remember(self, result: PromptResult) -> None:
        unit = result.unit
        self._by_unit.pop(unit, None)
        self._by_unit[unit] = _Remembered(result.text, result.version, dict(result.assignment))
        while len(self._by_unit) > MAX_REMEMBERED:
            self._by_unit.popitem(last=False)
        self.latest_version = result.version

    def attribute(self, draft: dict[str, Any], explicit: PromptResult | None = None) -> None:
        """Sets ``promptVersion`` and ``metadata.promptAssignment`` of a start record (replacing
        what an earlier, less informed call set)."""
        chosen = (explicit.version, dict(explicit.assignment)) if explicit is not None else self._pick(draft)
        if chosen is None:
            return
        version, assignment = chosen
        if version is not None:
            draft["promptVersion"] = version
        else:
            draft.pop("promptVersion", None)
        draft["metadata"] = {**(draft.get("metadata") or {}), "promptAssignment": assignment}
        sid = draft.get("sessionId")
        if assignment.get("arm") != "unattributed" and isinstance(sid, str):
            self._by_session.pop(sid, None)
            self._by_session[sid] = (version, assignment)
            while len(self._by_session) > MAX_REMEMBERED:
                self._by_session.popitem(last=False)

    def _pick(self, draft: dict[str, Any]) -> _Attribution | None:
        if not self._by_unit:
            return None
        sid = draft.get("sessionId")
        if isinstance(sid, str) and sid in self._by_session:
            version, assignment = self._by_session[sid]
            return version, dict(assignment)
        newest_first = list(reversed(self._by_unit.values()))

        def use(r: _Remembered) -> _Attribution:
            r.used = True
            return r.version, dict(r.assignment)

        system = draft.get("systemPrompt")
        if isinstance(system, str):
            match: _Remembered | None = None
            for r in newest_first:
                if r.text and r.text in system and (match is None or len(r.text) > len(match.text)):
                    match = r
            if match is not None:
                return use(match)
        unused = [r for r in newest_first if not r.used]
        if len(unused) == 1:
            return use(unused[0])
        if unused:
            return None, {
                "arm": "unattributed",
                "units": len(unused),
                "reason": "prompt() was asked for several units before this run started; "
                "pass its result to track()/query() as assignment=",
            }
        return use(newest_first[0])
