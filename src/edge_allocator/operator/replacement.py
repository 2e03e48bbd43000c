"""When a running task should be re-placed, and whether a proposed move is worth making.

Pure: the controller gathers what the operator observed (tasks, pods, nodes, the topology,
node metrics) and the extender's what-if answer; this module decides. Three triggers, in the
order they are repaired:

1. ``BudgetBroken`` - the task's node is now beyond its latency budget (a link slowed, a node
   was relabelled, an EdgeNetwork was edited). A correctness fault: no margin, no cooldown; the
   task moves as soon as the policy finds a node within the budget that has room.
2. ``Unscored`` - the pod was bound without a policy decision (the extender was down or
   restarting). Checked once per pod: it moves only if the policy now predicts a clear gain,
   otherwise the check is recorded as kept, with the reason.
3. ``Overloaded`` - the node's measured CPU (metrics.k8s.io, plus the requests of pods bound
   since the sample) stayed above the threshold for N consecutive fresh samples, all taken
   after the last move away from that node (the metric lags a move, so acting on older samples
   would move too many tasks). Moves only with a clear predicted gain.

Every move needs the extender's what-if answer (the policy's choice with the task's own pod
taken off its node) and, but for budget repairs, a gain above both the relative margin and the
absolute floor: that hysteresis is what keeps tasks from ping-ponging, since a move that is
worth making in one direction is never worth making straight back. Cooldowns and in-flight
limits bound the rest.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from edge_allocator.cluster.budget import latency_within
from edge_allocator.cluster.topology import Topology
from edge_allocator.operator.views import PodView, TaskView, parse_time


class Reason(enum.StrEnum):
    BUDGET_BROKEN = "BudgetBroken"
    UNSCORED = "Unscored"
    OVERLOADED = "Overloaded"


PRIORITY = {Reason.BUDGET_BROKEN: 0, Reason.UNSCORED: 1, Reason.OVERLOADED: 2}

DEFAULT_REPLACEMENT_POLICY = "Auto"


@dataclass(frozen=True)
class ReplacementConfig:
    """Re-placement knobs (operator flags ``--replacement-*``; defaults documented in README).

    Attributes:
        mode: ``on`` moves tasks, ``dry-run`` only reports what would move and why (status
            condition, Event, metrics), ``off`` does neither.
        interval_s: how often running tasks are checked.
        margin: the least predicted gain, as a fraction of the current estimated completion
            time, for an ``Unscored`` or ``Overloaded`` move.
        min_gain_s: the least predicted gain in seconds for such a move.
        cooldown_s: the least time between two moves of one task (budget repairs exempt).
        max_in_flight: moves in progress at once, cluster-wide.
        max_in_flight_per_node: moves away from one node in progress at once.
        overload_cpu: a node is over the threshold when measured CPU (plus the requests of
            pods bound since the sample) exceeds this fraction of its allocatable CPU.
        overload_samples: consecutive fresh samples over the threshold that make an overload.
        metrics_interval_s: how often node metrics are read.
        metrics_max_age_s: a sample older than this (by its own timestamp) is ignored.
        move_timeout_s: a new pod not Running after this is given up; the task stays put.
        max_checks_per_sweep: what-if questions asked per sweep (bounds the extender load).
    """

    mode: str = "on"
    interval_s: float = 10.0
    margin: float = 0.2
    min_gain_s: float = 0.05
    cooldown_s: float = 300.0
    max_in_flight: int = 5
    max_in_flight_per_node: int = 1
    overload_cpu: float = 0.9
    overload_samples: int = 3
    metrics_interval_s: float = 15.0
    metrics_max_age_s: float = 90.0
    move_timeout_s: float = 120.0
    max_checks_per_sweep: int = 50

    def __post_init__(self) -> None:
        if self.mode not in ("on", "dry-run", "off"):
            raise ValueError(f"replacement mode: {self.mode!r} is not one of on, dry-run, off")
        checks = {
            "interval_s": self.interval_s > 0,
            "margin": self.margin >= 0,
            "min_gain_s": self.min_gain_s >= 0,
            "cooldown_s": self.cooldown_s >= 0,
            "max_in_flight": self.max_in_flight >= 1,
            "max_in_flight_per_node": self.max_in_flight_per_node >= 1,
            "overload_cpu": self.overload_cpu > 0,
            "overload_samples": self.overload_samples >= 1,
            "metrics_interval_s": self.metrics_interval_s > 0,
            "metrics_max_age_s": self.metrics_max_age_s > 0,
            "move_timeout_s": self.move_timeout_s > 0,
            "max_checks_per_sweep": self.max_checks_per_sweep >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"replacement {name}: {getattr(self, name)!r} is out of range")


@dataclass(frozen=True)
class Trigger:
    reason: Reason
    detail: str
    node: str
    pod: PodView


@dataclass(frozen=True)
class WhatIf:
    """The extender's answer to "where would this task go now?"."""

    chosen: str | None
    current_node: str | None
    current_rank: int | None
    gain_s: float | None
    gain_ratio: float | None
    policy: str
    model_version: str
    filtered: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """Move (to ``target``, predicted) or keep, with the sentence that says why."""

    move: bool
    reason: Reason
    message: str
    target: str | None = None
    gain_ratio: float | None = None
    gain_s: float | None = None


# -- node load ---------------------------------------------------------------------------------


@dataclass
class NodeLoad:
    """The recent CPU samples of each node, as fractions of allocatable CPU."""

    keep: int = 16
    samples: dict[str, deque[tuple[dt.datetime, float]]] = field(default_factory=dict)

    def observe(self, node: str, at: dt.datetime, fraction: float) -> bool:
        """Record one sample; False (ignored) if not newer than the last one (metrics-server
        serves the same sample until its next scrape)."""
        seen = self.samples.setdefault(node, deque(maxlen=self.keep))
        if seen and at <= seen[-1][0]:
            return False
        seen.append((at, fraction))
        return True

    def forget(self, node: str) -> None:
        self.samples.pop(node, None)

    def newest(self, node: str) -> dt.datetime | None:
        seen = self.samples.get(node)
        return seen[-1][0] if seen else None

    def overloaded(
        self, node: str, cfg: ReplacementConfig, now: dt.datetime, after: dt.datetime | None
    ) -> float | None:
        """The smallest of the last N fractions if all N are over the threshold, fresh enough
        and taken after ``after`` (the last move away from the node); else ``None``."""
        seen = self.samples.get(node)
        n = cfg.overload_samples
        if not seen or len(seen) < n:
            return None
        last = list(seen)[-n:]
        if (now - last[-1][0]).total_seconds() > cfg.metrics_max_age_s:
            return None
        if after is not None and last[0][0] <= after:
            return None
        low = min(f for _, f in last)
        return low if low > cfg.overload_cpu else None


# -- triggers ----------------------------------------------------------------------------------


def replacement_policy(task: TaskView) -> str:
    return task.replacement or DEFAULT_REPLACEMENT_POLICY


def within_budget(task: TaskView, node: str, topo: Topology) -> tuple[bool, str]:
    """Whether ``node`` is within the task's budget now, and how far it is."""
    budget = task.latency_budget_ms
    if budget is None or (task.data_source_node and task.data_source_node == node):
        return True, ""
    source = str(task.status.get("dataSourceSite") or task.data_source_site or "")
    site = topo.site_of(node)
    if site is None:
        return False, f"node {node} is in no site now, so no latency budget can allow it"
    lat = topo.latency_exact_ms(source, site)
    if latency_within(lat, budget):
        return True, ""
    far = f"{lat:g} ms" if lat != float("inf") else "unreachable"
    return False, f"node {node} (site {site}) is now {far} from {source}, budget {budget} ms"


def trigger(
    task: TaskView,
    pod: PodView | None,
    topo: Topology,
    load: NodeLoad,
    cfg: ReplacementConfig,
    now: dt.datetime,
    last_move_from: Mapping[str, dt.datetime],
) -> Trigger | None:
    """Why ``task`` (running as ``pod``) should be considered for a move, or ``None``."""
    policy = replacement_policy(task)
    st = task.status
    if policy == "Never" or task.deleting or task.phase != "Running" or st.get("move"):
        return None
    if pod is None or not pod.node_name or pod.phase != "Running" or pod.deleting:
        return None
    node = pod.node_name
    ok, why = within_budget(task, node, topo)
    if not ok:
        return Trigger(Reason.BUDGET_BROKEN, why, node, pod)
    if policy == "BudgetOnly":
        return None
    last_move = parse_time(st.get("lastMoveTime"))
    if last_move is not None and (now - last_move).total_seconds() < cfg.cooldown_s:
        return None
    decision = st.get("decision") or {}
    check = st.get("replacementCheck") or {}
    if not decision.get("recorded") and check.get("pod") != pod.uid:
        return Trigger(
            Reason.UNSCORED, f"pod {pod.name} was bound without a policy decision", node, pod
        )
    frac = load.overloaded(node, cfg, now, last_move_from.get(node))
    if frac is not None:
        return Trigger(
            Reason.OVERLOADED,
            f"node {node} has used over {cfg.overload_cpu:.0%} of its CPU (at least {frac:.0%}) "
            f"for {cfg.overload_samples} samples in a row",
            node,
            pod,
        )
    return None


def decide(trig: Trigger, answer: WhatIf, cfg: ReplacementConfig) -> Verdict:
    """Move or keep, given the extender's what-if answer (see the module docstring)."""
    target = answer.chosen
    gain = (
        ""
        if answer.gain_ratio is None
        else f"; predicted gain {answer.gain_ratio:.0%} ({answer.gain_s or 0.0:.3g} s)"
    )
    by = f"{answer.policy} {answer.model_version}"
    if target is None:
        return Verdict(
            False,
            trig.reason,
            f"{trig.detail}; {by} finds no other node that fits"
            + (" within the budget" if trig.reason is Reason.BUDGET_BROKEN else ""),
        )
    if target == trig.node:
        return Verdict(False, trig.reason, f"{trig.detail}; {by} would place it here again")
    ratio, secs = answer.gain_ratio or 0.0, answer.gain_s or 0.0
    clears = ratio >= cfg.margin and secs >= cfg.min_gain_s
    if trig.reason is Reason.BUDGET_BROKEN or clears:  # budget repairs need no gain
        message = f"{trig.detail}; {by} chooses {target}{gain}"
    else:
        message = (
            f"{trig.detail}; {by} prefers {target} but the predicted gain ({ratio:.0%}, "
            f"{secs:.3g} s) is below the margin ({cfg.margin:.0%}, {cfg.min_gain_s:g} s)"
        )
    move = trig.reason is Reason.BUDGET_BROKEN or clears
    return Verdict(move, trig.reason, message, target, answer.gain_ratio, answer.gain_s)
