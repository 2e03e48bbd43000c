"""Status conditions per the Kubernetes API conventions (type/status/reason/message/time/gen).

``lastTransitionTime`` moves only when ``status`` changes, so a condition says since when it
has been true, not when the operator last looked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from edge_allocator.operator.views import format_time


def set_condition(
    conditions: Iterable[Mapping[str, Any]],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    now: dt.datetime,
    generation: int,
) -> list[dict[str, Any]]:
    """A copy of ``conditions`` with ``type_`` set; other conditions are kept as they are."""
    value = "True" if status else "False"
    out: list[dict[str, Any]] = []
    found = False
    for cond in conditions:
        if cond.get("type") != type_:
            out.append(dict(cond))
            continue
        found = True
        since = cond.get("lastTransitionTime") if cond.get("status") == value else None
        out.append(_make(type_, value, reason, message, since or format_time(now), generation))
    if not found:
        out.append(_make(type_, value, reason, message, format_time(now), generation))
    return out


def get_condition(conditions: Iterable[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def _make(
    type_: str, value: str, reason: str, message: str, since: str, generation: int
) -> dict[str, Any]:
    return {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }
