"""The operator's planner: every transition of an EdgeTask's life, from parsed API bodies."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from edge_allocator.cluster.annotations import (
    ANN_DECISION,
    LABEL_ATTEMPT,
    LABEL_TASK,
    CandidateScore,
    DecisionRecord,
)
from edge_allocator.operator.config import OperatorConfig
from edge_allocator.operator.planner import Observed, plan, status_changes
from edge_allocator.operator.topology import build_topology
from edge_allocator.operator.views import NetworkView, NodeView, PodView, TaskView, format_time

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
CFG = OperatorConfig(scheduler_name="default-scheduler", node_lost_grace_s=40, backoff_base_s=2)
UID = "uid-task"


def task(status: dict[str, Any] | None = None, **spec: Any) -> TaskView:
    body_spec: dict[str, Any] = {
        "dataSource": {"site": "site-a"},
        "maxAttempts": 3,
        "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}},
    }
    body_spec.update(spec)
    return TaskView.from_body(
        {
            "metadata": {
                "name": "t1",
                "namespace": "ns",
                "uid": UID,
                "generation": 2,
                "resourceVersion": "10",
            },
            "spec": body_spec,
            "status": status or {},
        }
    )


def node(name: str, zone: str | None, ready: bool = True, since: dt.datetime = NOW) -> NodeView:
    labels = {"topology.kubernetes.io/zone": zone} if zone else {}
    cond = {
        "type": "Ready",
        "status": "True" if ready else "False",
        "lastTransitionTime": format_time(since),
    }
    return NodeView.from_body(
        {"metadata": {"name": name, "labels": labels}, "status": {"conditions": [cond]}}
    )


NODES = {n.name: n for n in (node("a1", "site-a"), node("b1", "site-b"), node("c1", "site-c"))}
NETWORK = NetworkView.from_body(
    {
        "metadata": {"name": "fleet", "generation": 1},
        "spec": {
            "sites": [{"name": "site-a"}, {"name": "site-b"}, {"name": "site-c"}],
            "links": [
                {"a": "site-a", "b": "site-b", "latencyMs": 5, "bandwidthMbps": 100},
                {"a": "site-b", "b": "site-c", "latencyMs": 20, "bandwidthMbps": 100},
            ],
        },
    }
)


def pod(
    attempt: int,
    phase: str = "Pending",
    node_name: str | None = None,
    *,
    owner: str = UID,
    deleting: bool = False,
    reason: str | None = None,
    decision: str | None = None,
) -> PodView:
    meta: dict[str, Any] = {
        "name": f"t1-{attempt}",
        "namespace": "ns",
        "uid": f"pod-uid-{attempt}",
        "labels": {LABEL_TASK: "t1", LABEL_ATTEMPT: str(attempt)},
        "ownerReferences": [{"uid": owner, "controller": True}],
        "annotations": {ANN_DECISION: decision} if decision else {},
    }
    if deleting:
        meta["deletionTimestamp"] = format_time(NOW)
    conds = []
    if node_name:
        conds.append(
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": format_time(NOW)}
        )
    if phase == "Running":
        conds.append({"type": "Ready", "status": "True"})
    view = PodView.from_body(
        {
            "metadata": meta,
            "spec": {"nodeName": node_name} if node_name else {},
            "status": {"phase": phase, "reason": reason, "conditions": conds},
        }
    )
    assert view is not None
    return view


def observe(
    t: TaskView, pods: list[PodView] = (), nodes: dict[str, NodeView] = NODES, **kw: Any
) -> Observed:  # type: ignore[assignment]
    topo = build_topology([NETWORK], nodes.values())
    return Observed(t, {p.attempt: p for p in pods}, nodes, topo, kw.pop("now", NOW), **kw)


def cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def started(attempt: int = 1, **extra: Any) -> dict[str, Any]:
    """The status right after attempt ``attempt`` was created."""
    status = {
        "attempts": attempt,
        "podName": f"t1-{attempt}",
        "podUID": f"pod-uid-{attempt}",
        "dataSourceSite": "site-a",
        "phase": "Pending",
    }
    status.update(extra)
    return status


# -- first attempt ---------------------------------------------------------------------------


def test_new_task_with_a_known_site_creates_attempt_one() -> None:
    p = plan(observe(task()), CFG)
    assert p.create_attempt == 1
    assert p.status["attempts"] == 1
    assert p.status["podName"] == "t1-1"
    assert p.status["phase"] == "Pending"
    assert p.status["dataSourceSite"] == "site-a"
    assert p.status["observedGeneration"] == 2
    assert cond(p.status, "Scheduled")["status"] == "False"
    assert [e.reason for e in p.events] == ["PodCreated"]


def test_unknown_site_fails_the_task_with_a_condition_naming_the_field() -> None:
    p = plan(observe(task(dataSource={"site": "site-z"})), CFG)
    assert p.create_attempt is None
    assert p.status["phase"] == "Failed"
    assert p.status["reason"] == "DataSourceNotFound"
    failed = cond(p.status, "Failed")
    assert failed["status"] == "True"
    assert "spec.dataSource.site" in failed["message"] and "site-z" in failed["message"]
    assert [e.type for e in p.events] == ["Warning"]


def test_a_site_declared_only_by_a_node_label_is_known() -> None:
    nodes = {**NODES, "d1": node("d1", "site-d")}
    p = plan(observe(task(dataSource={"site": "site-d"}), nodes=nodes), CFG)
    assert p.create_attempt == 1


def test_a_site_declared_only_by_an_edgenetwork_is_known() -> None:
    t = task(dataSource={"site": "site-c"})
    p = plan(observe(t, nodes={"a1": NODES["a1"]}), CFG)
    assert p.create_attempt == 1


def test_data_source_node_resolves_to_its_site() -> None:
    p = plan(observe(task(dataSource={"node": "b1"})), CFG)
    assert p.create_attempt == 1
    assert p.status["dataSourceSite"] == "site-b"


def test_missing_data_source_node_fails() -> None:
    p = plan(observe(task(dataSource={"node": "nope"})), CFG)
    assert p.status["phase"] == "Failed"
    assert "spec.dataSource.node" in p.status["message"]


def test_data_source_node_without_a_site_fails() -> None:
    nodes = {**NODES, "x1": node("x1", None)}
    p = plan(observe(task(dataSource={"node": "x1"}), nodes=nodes), CFG)
    assert p.status["reason"] == "DataSourceSiteUnknown"


# -- following the pod -----------------------------------------------------------------------


def test_bound_running_pod_fills_node_site_latency_and_says_no_decision_was_recorded() -> None:
    t = task(started())
    p = plan(observe(t, [pod(1, "Running", "c1")]), CFG)
    st = p.status
    assert (st["phase"], st["nodeName"], st["site"]) == ("Running", "c1", "site-c")
    assert st["networkLatencyMs"] == 25  # site-a -> site-b -> site-c
    assert st["decision"]["recorded"] is False
    assert "default-scheduler" in st["decision"]["message"]
    assert "score" not in st["decision"] and "rank" not in st["decision"]
    assert cond(st, "Scheduled")["status"] == "True"
    assert cond(st, "Ready")["status"] == "True"
    assert [e.reason for e in p.events] == ["Scheduled", "Running"]
    assert p.placed


def test_bound_but_not_started_pod_is_scheduled() -> None:
    p = plan(observe(task(started()), [pod(1, "Pending", "a1")]), CFG)
    assert p.status["phase"] == "Scheduled"
    assert p.status["networkLatencyMs"] == 1  # same site: the EdgeNetwork's default intra latency
    assert [e.reason for e in p.events] == ["Scheduled"]


def test_running_again_emits_no_events_and_changes_nothing() -> None:
    first = plan(observe(task(started()), [pod(1, "Running", "b1")]), CFG)
    again = plan(observe(task(first.status), [pod(1, "Running", "b1")]), CFG)
    assert again.events == []
    assert status_changes(first.status, again.status) == {}


def _record(chosen: str) -> str:
    return DecisionRecord(
        policy="gnn",
        model_version="v3",
        chosen=chosen,
        score=9,
        rank=1,
        latency_ms=5.5,
        candidates=(CandidateScore("b1", 9, 0.9), CandidateScore("a1", 7, 0.7)),
        candidate_count=3,
    ).to_json()


def test_decision_annotation_fills_the_decision() -> None:
    p = plan(observe(task(started()), [pod(1, "Running", "b1", decision=_record("b1"))]), CFG)
    d = p.status["decision"]
    assert d["recorded"] is True and d["source"] == "annotation"
    assert (d["policy"], d["modelVersion"], d["score"], d["rank"]) == ("gnn", "v3", 9, 1)
    assert d["latencyMs"] == 5.5
    assert [c["node"] for c in d["candidates"]] == ["b1", "a1"]


def test_decision_reports_the_bound_nodes_rank_when_the_scheduler_chose_otherwise() -> None:
    p = plan(observe(task(started()), [pod(1, "Running", "a1", decision=_record("b1"))]), CFG)
    d = p.status["decision"]
    assert (d["score"], d["rank"], d["chosenNode"]) == (7, 2, "b1")
    assert "preferred b1" in d["message"]


def test_extender_record_is_used_when_the_annotation_is_missing() -> None:
    rec = DecisionRecord.from_json(_record("b1"))
    obs = observe(task(started()), [pod(1, "Running", "b1")], extender_record=rec)
    d = plan(obs, CFG).status["decision"]
    assert d["source"] == "extender" and d["score"] == 9


def test_unschedulable_pod_keeps_the_task_pending_with_the_schedulers_message() -> None:
    unsched = PodView.from_body(
        {
            "metadata": {
                "name": "t1-1",
                "namespace": "ns",
                "uid": "pod-uid-1",
                "labels": {LABEL_TASK: "t1", LABEL_ATTEMPT: "1"},
                "ownerReferences": [{"uid": UID, "controller": True}],
            },
            "status": {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/3 nodes are available",
                    }
                ],
            },
        }
    )
    assert unsched is not None
    p = plan(observe(task(started()), [unsched]), CFG)
    assert p.status["phase"] == "Pending"
    assert cond(p.status, "Scheduled")["reason"] == "Unschedulable"
    assert "0/3 nodes" in p.status["message"]


def test_succeeded_pod_completes_the_task() -> None:
    p = plan(observe(task(started()), [pod(1, "Succeeded", "a1")]), CFG)
    assert p.status["phase"] == "Succeeded"
    assert cond(p.status, "Completed")["status"] == "True"
    assert "completionTime" in p.status


def test_terminal_tasks_are_left_alone() -> None:
    for phase in ("Succeeded", "Failed"):
        t = task(started(phase=phase))
        p = plan(observe(t, [pod(1, "Running", "a1")]), CFG)
        assert p.create_attempt is None and p.delete_pods == [] and p.events == []


# -- retries ---------------------------------------------------------------------------------


def test_failed_pod_schedules_the_next_attempt_after_backoff() -> None:
    p = plan(observe(task(started()), [pod(1, "Failed", "a1", reason="Evicted")]), CFG)
    assert p.create_attempt is None
    assert p.status["phase"] == "Pending" and p.status["reason"] == "Rescheduling"
    assert p.status["nextAttemptTime"] == format_time(NOW + dt.timedelta(seconds=2))
    assert p.requeue_after == 2
    assert p.rescheduled == "Evicted"
    assert "attempt 1: Evicted" in p.status["lastFailure"]
    assert (p.events[-1].type, p.events[-1].reason) == ("Warning", "Rescheduling")

    later = NOW + dt.timedelta(seconds=2)
    nxt = plan(observe(task(p.status), [pod(1, "Failed", "a1")], now=later), CFG)
    assert nxt.create_attempt == 2
    assert nxt.status["attempts"] == 2 and nxt.status["podName"] == "t1-2"
    assert nxt.status["nextAttemptTime"] is None and nxt.status["nodeName"] is None


def test_before_the_backoff_ends_nothing_is_created() -> None:
    p = plan(observe(task(started()), [pod(1, "Failed", "a1")]), CFG)
    early = NOW + dt.timedelta(seconds=1)
    again = plan(observe(task(p.status), [pod(1, "Failed", "a1")], now=early), CFG)
    assert again.create_attempt is None
    assert again.requeue_after == pytest.approx(1.0)


def test_last_attempt_failing_fails_the_task() -> None:
    t = task(started(3), maxAttempts=3)
    p = plan(observe(t, [pod(3, "Failed", "a1")]), CFG)
    assert p.status["phase"] == "Failed"
    assert "gave up after 3 of 3 attempts" in p.status["message"]
    assert cond(p.status, "Failed")["status"] == "True"
    assert p.create_attempt is None


def test_deleted_node_deletes_the_pod_and_reschedules() -> None:
    nodes = {k: v for k, v in NODES.items() if k != "b1"}
    p = plan(observe(task(started()), [pod(1, "Running", "b1")], nodes=nodes), CFG)
    assert [x.name for x in p.delete_pods] == ["t1-1"]
    assert p.rescheduled == "NodeLost"
    assert "b1 was deleted" in p.status["message"]


def test_not_ready_node_within_grace_waits_then_reschedules() -> None:
    since = NOW - dt.timedelta(seconds=30)
    nodes = {**NODES, "b1": node("b1", "site-b", ready=False, since=since)}
    p = plan(observe(task(started()), [pod(1, "Running", "b1")], nodes=nodes), CFG)
    assert p.delete_pods == [] and p.rescheduled is None
    assert p.requeue_after == pytest.approx(10.0)

    later = NOW + dt.timedelta(seconds=11)
    p2 = plan(observe(task(started()), [pod(1, "Running", "b1")], nodes=nodes, now=later), CFG)
    assert [x.name for x in p2.delete_pods] == ["t1-1"]
    assert p2.rescheduled == "NodeNotReady"


def test_missing_pod_is_confirmed_before_it_counts_as_deleted() -> None:
    t = task(started())
    p = plan(observe(t), CFG)
    assert p.confirm_absent == "t1-1" and p.create_attempt is None and p.rescheduled is None
    p2 = plan(observe(t, pod_gone_confirmed=True), CFG)
    assert p2.rescheduled == "PodDeleted"


def test_pod_being_deleted_ends_the_attempt() -> None:
    p = plan(observe(task(started()), [pod(1, "Running", "a1", deleting=True)]), CFG)
    assert p.rescheduled == "PodDeleted"


def test_attempt_whose_pod_was_never_confirmed_is_created_again() -> None:
    t = task(started(podUID=None))
    p = plan(observe(t), CFG)
    assert p.create_attempt == 1 and p.confirm_absent is None


def test_stray_live_pod_of_an_old_attempt_is_deleted() -> None:
    t = task(started(2))
    p = plan(observe(t, [pod(1, "Running", "a1"), pod(2, "Running", "b1")]), CFG)
    assert [x.name for x in p.delete_pods] == ["t1-1"]


def test_pod_with_our_name_but_another_owner_fails_the_task() -> None:
    p = plan(observe(task(started()), [pod(1, "Running", "a1", owner="someone-else")]), CFG)
    assert p.status["reason"] == "PodNameTaken"
    assert p.delete_pods == []


# -- small helpers ---------------------------------------------------------------------------


def test_status_changes_is_a_merge_patch() -> None:
    old = {"a": 1, "b": 2, "c": 3}
    new = {"a": 1, "b": 5, "c": None, "d": None, "e": 4}
    assert status_changes(old, new) == {"b": 5, "c": None, "e": 4}


def test_backoff_doubles_and_is_capped() -> None:
    cfg = OperatorConfig(backoff_base_s=1, backoff_max_s=5)
    assert [cfg.backoff_s(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 5, 5]


def test_condition_transition_time_moves_only_when_status_changes() -> None:
    p = plan(observe(task(started()), [pod(1, "Running", "a1")]), CFG)
    t0 = cond(p.status, "Scheduled")["lastTransitionTime"]
    later = NOW + dt.timedelta(minutes=5)
    p2 = plan(observe(task(p.status), [pod(1, "Running", "a1")], now=later), CFG)
    assert cond(p2.status, "Scheduled")["lastTransitionTime"] == t0


def test_pod_waiting_for_the_scheduler_needs_no_status_write() -> None:
    created = plan(observe(task()), CFG)
    created.status["podUID"] = "pod-uid-1"
    waiting = plan(observe(task(created.status), [pod(1, "Pending")]), CFG)
    assert status_changes(created.status, waiting.status) == {}
    assert waiting.events == [] and waiting.create_attempt is None
