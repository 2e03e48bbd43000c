"""Helpers for the scenario-schema tests: a scenario dict with a few fields changed, and the
check that a changed file is refused naming the field and the rule."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from edge_allocator.sim.scenario import ScenarioError, parse_scenario


def with_changes(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``base`` with ``section__field=value`` changes (``sites=[...]`` at the top level; a
    number in the path indexes a list)."""
    data = copy.deepcopy(base)
    for key, value in changes.items():
        node = data
        *parents, leaf = key.split("__")
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
        node[leaf] = value
    return data


def assert_refused(data: dict[str, Any], message: str) -> None:
    """``data`` read as ``fleet.yaml`` is refused with an error that contains ``message``."""
    with pytest.raises(ScenarioError) as err:
        parse_scenario(data, "fleet.yaml")
    assert "fleet.yaml: invalid scenario" in str(err.value)
    assert message in str(err.value)
