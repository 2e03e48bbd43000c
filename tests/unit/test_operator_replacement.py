"""Re-placement: triggers, verdicts, node load, and the make-before-break life of a move.

Pure logic (the integration tests drive the same code against the real API server)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from test_operator_planner import CFG, NETWORK, NODES, NOW, observe, pod, task

from edge_allocator.operator.planner import plan
from edge_allocator.operator.replacement import (
    NodeLoad,
    Reason,
    ReplacementConfig,
    Verdict,
    WhatIf,
    decide,
    trigger,
)
from edge_allocator.operator.topology import build_topology
from edge_allocator.operator.views import NetworkView, format_time

RC = ReplacementConfig(cooldown_s=300, overload_samples=3, overload_cpu=0.9, metrics_max_age_s=60)
DECIDED = {"recorded": True, "policy": "gnn"}


def running(**status: Any) -> dict[str, Any]:
    return {
        "phase": "Running",
        "attempts": 1,
        "podName": "t1-1",
        "podUID": "pod-uid-1",
        "nodeName": "b1",
        "dataSourceSite": "site-a",
        "decision": DECIDED,
        **status,
    }


def topo(net: NetworkView = NETWORK) -> Any:
    return build_topology([net], NODES.values())


def at(seconds: float) -> dt.datetime:
    return NOW + dt.timedelta(seconds=seconds)


def trig_for(t: Any, node: str = "b1", load: NodeLoad | None = None, now: dt.datetime = NOW) -> Any:
    return trigger(t, pod(1, "Running", node), topo(), load or NodeLoad(), RC, now, {})


# -- triggers --------------------------------------------------------------------------------


def test_budget_broken_when_node_is_beyond_budget_now() -> None:
    t = task(running(), latencyBudgetMs=10)
    assert trig_for(t, "b1") is None  # a->b 5 ms
    found = trig_for(t, "c1")  # a->c 25 ms
    assert found is not None and found.reason is Reason.BUDGET_BROKEN
    assert "25 ms from site-a, budget 10 ms" in found.detail


def test_budget_repair_ignores_cooldown_but_gains_do_not() -> None:
    recent = format_time(NOW - dt.timedelta(seconds=10))
    t = task(running(lastMoveTime=recent, decision={"recorded": False}), latencyBudgetMs=10)
    assert trig_for(t, "c1").reason is Reason.BUDGET_BROKEN
    assert trig_for(t, "b1") is None  # unscored, but in cooldown


def test_unscored_checked_once_per_pod() -> None:
    t = task(running(decision={"recorded": False}))
    assert trig_for(t).reason is Reason.UNSCORED
    checked = task(running(decision={"recorded": False}, replacementCheck={"pod": "pod-uid-1"}))
    assert trig_for(checked) is None


@pytest.mark.parametrize(
    ("policy", "node", "expected"),
    [
        ("Never", "c1", None),
        ("BudgetOnly", "c1", Reason.BUDGET_BROKEN),
        ("BudgetOnly", "b1", None),  # unscored, but only budget repairs are allowed
        ("Auto", "b1", Reason.UNSCORED),
    ],
)
def test_per_task_replacement_policy(policy: str, node: str, expected: Reason | None) -> None:
    t = task(running(decision={"recorded": False}), latencyBudgetMs=10, replacement=policy)
    found = trig_for(t, node)
    assert (found.reason if found else None) is expected


def test_not_running_or_moving_tasks_are_left_alone() -> None:
    assert trig_for(task(running(phase="Scheduled"), latencyBudgetMs=10), "c1") is None
    moving = task(running(move={"fromNode": "c1"}), latencyBudgetMs=10)
    assert trig_for(moving, "c1") is None


# -- node load -------------------------------------------------------------------------------


def test_overload_needs_consecutive_fresh_samples_after_the_last_move() -> None:
    load = NodeLoad()
    for i, frac in enumerate([0.95, 0.97, 0.5, 0.95, 0.96]):
        assert load.observe("b1", at(15 * i), frac)
    assert load.overloaded("b1", RC, at(60), None) is None  # the dip at sample 3 breaks the run
    assert load.observe("b1", at(75), 0.99)
    assert load.overloaded("b1", RC, at(75), None) == pytest.approx(0.95)
    assert load.overloaded("b1", RC, at(75 + 61), None) is None  # newest sample stale
    assert load.overloaded("b1", RC, at(75), after=at(45)) is None  # a move since sample 4
    assert not load.observe("b1", at(75), 0.99)  # same timestamp: not a new sample
    t = task(running())
    assert trig_for(t, "b1", load, at(75)).reason is Reason.OVERLOADED


def test_oscillating_load_never_makes_an_overload() -> None:
    load = NodeLoad()
    for i in range(40):
        load.observe("b1", at(15 * i), 0.95 if i % 2 else 0.6)
        assert load.overloaded("b1", RC, at(15 * i), None) is None


# -- verdicts --------------------------------------------------------------------------------


def answer(chosen: str | None, ratio: float | None, secs: float | None = 1.0) -> WhatIf:
    return WhatIf(chosen, "b1", 2, secs, ratio, "gnn", "2.1.0")


def test_verdicts_apply_the_margin_except_to_budget_repairs() -> None:
    t = task(running(decision={"recorded": False}), latencyBudgetMs=10)
    unscored = trig_for(t, "b1")
    assert decide(unscored, answer("a1", 0.35), RC).move
    kept = decide(unscored, answer("a1", 0.05), RC)
    assert not kept.move and "below the margin (20%" in kept.message
    tiny = decide(unscored, answer("a1", 0.5, secs=0.01), RC)
    assert not tiny.move  # relative gain is large but it saves 10 ms only
    assert not decide(unscored, answer("b1", 0.9), RC).move  # it would land here again
    broken = trig_for(t, "c1")
    assert decide(broken, answer("a1", -0.1), RC).move  # correctness first, whatever the gain
    nowhere = decide(broken, answer(None, None), RC)
    assert not nowhere.move and "within the budget" in nowhere.message


def test_config_rejects_bad_values_naming_the_field() -> None:
    with pytest.raises(ValueError, match="replacement mode"):
        ReplacementConfig(mode="sometimes")
    with pytest.raises(ValueError, match="max_in_flight"):
        ReplacementConfig(max_in_flight=0)


# -- the planner's side: a move from start to end --------------------------------------------


def start_move() -> tuple[Any, Any]:
    t = task(running(decision={"recorded": False}), latencyBudgetMs=30)
    old = pod(1, "Running", "b1")
    trig = trigger(t, old, topo(), NodeLoad(), RC, NOW, {})
    verdict = Verdict(True, Reason.UNSCORED, "clear gain", "a1", 0.4, 1.2)
    p = plan(observe(t, [old], move=(trig, verdict)), CFG)
    return t, p


def test_a_move_starts_a_new_pod_and_keeps_the_old_one() -> None:
    _, p = start_move()
    assert p.create_attempt == 2 and p.create_avoid == "b1"
    assert p.create_budget is not None
    assert p.create_budget.allowed_sites == ("site-a", "site-b", "site-c")  # c is 25 ms <= 30
    assert p.delete_pods == [] and p.evict_pods == []
    assert p.status["move"]["fromNode"] == "b1" and p.status["move"]["fromAttempt"] == 1
    assert p.status["phase"] == "Running" and p.status["nodeName"] == "b1"
    assert [e.reason for e in p.events] == ["Moving"]


def test_old_pod_is_evicted_only_once_the_new_one_runs() -> None:
    t, p = start_move()
    moving = dataclasses.replace(t, status={**p.status, "podUID": "pod-uid-2"})
    old = pod(1, "Running", "b1")
    waiting = plan(observe(moving, [old, pod(2, "Pending", "a1")], now=at(5)), CFG)
    assert waiting.evict_pods == [] and waiting.delete_pods == []
    assert waiting.status["move"] is not None and waiting.status["nodeName"] == "b1"
    done = plan(observe(moving, [old, pod(2, "Running", "a1")], now=at(8)), CFG)
    assert done.evict_pods == [old] and done.delete_pods == []
    st = done.status
    assert st["move"] is None and st["moves"] == 1 and st["previousNode"] == "b1"
    assert st["nodeName"] == "a1" and st["lastMoveReason"] == "Unscored"
    replaced = next(c for c in st["conditions"] if c["type"] == "Replaced")
    assert replaced["status"] == "True" and "predicted gain 40%" in replaced["message"]
    assert done.moved == "Unscored"


def test_a_move_that_cannot_start_a_running_pod_is_given_up() -> None:
    t, p = start_move()
    moving = dataclasses.replace(t, status={**p.status, "podUID": "pod-uid-2"})
    old, new = pod(1, "Running", "b1"), pod(2, "Pending")
    late = plan(observe(moving, [old, new], now=at(RC.move_timeout_s + 1)), CFG)
    assert late.delete_pods == [new] and late.evict_pods == []
    st = late.status
    assert st["move"] is None and st["attempts"] == 1 and st["podUID"] == "pod-uid-1"
    assert st["phase"] == "Running" and st["reason"] == "MoveAborted"
    assert st["lastMoveTime"] == format_time(at(RC.move_timeout_s + 1))


def test_moves_do_not_use_up_attempts() -> None:
    st = running(attempts=3, moves=2, podName="t1-3", podUID="pod-uid-3")
    p = plan(observe(task(st), [pod(3, "Failed", "a1", reason="Error")]), CFG)
    assert p.status["phase"] == "Pending" and p.status["reason"] == "Rescheduling"


def test_operator_restart_mid_move_leaves_one_live_pod() -> None:
    # status says attempt 1 runs (the move's status write was lost), but pod 2 exists
    t = task(running(), latencyBudgetMs=30)
    p = plan(observe(t, [pod(1, "Running", "b1"), pod(2, "Running", "a1")]), CFG)
    assert [x.name for x in p.delete_pods] == ["t1-2"]


def test_unsatisfiable_budget_holds_the_task_pending_with_the_nearest_site() -> None:
    p = plan(observe(task({}, latencyBudgetMs=0)), CFG)  # CRD minimum is 1; the rule holds anyway
    assert p.create_attempt is None
    msg = p.status["message"]
    assert p.status["phase"] == "Pending" and p.status["reason"] == "BudgetUnsatisfiable"
    assert "nearest is site-a at 1 ms" in msg
    cond = next(c for c in p.status["conditions"] if c["type"] == "Scheduled")
    assert cond["reason"] == "BudgetUnsatisfiable" and cond["message"] == msg
    assert p.requeue_after is not None


def test_kept_verdict_is_recorded_once() -> None:
    t = task(running(decision={"recorded": False}))
    note = {"pod": "pod-uid-1", "outcome": "kept", "reason": "Unscored", "message": "no gain"}
    p = plan(observe(t, [pod(1, "Running", "b1")], replacement_note=note), CFG)
    assert p.status["replacementCheck"]["outcome"] == "kept"
    assert [e.reason for e in p.events] == ["Kept"]
