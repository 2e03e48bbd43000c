"""Retrying the waiting tasks: the shortcuts that skip tasks which cannot fit change nothing.

A drain must place each waiting task, in FIFO order, exactly when it fits at that moment. The
engine skips tasks without a candidate search when it can prove they do not fit (only nodes
that gained room since the task was last tried can take it; a larger task than one that just
failed on the same node set cannot fit either). These tests run overloaded scenarios, so the
queue is long, with node, site and link failures, once with the shortcuts and once trying every
task, and require the same decisions, in the same order, with the same outcomes.
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from edge_allocator.policy.registry import get_policy
from edge_allocator.sim.engine import PolicyChooser, Simulator, _Front, _WaitQueue
from edge_allocator.sim.scenario import Scenario, load_scenario, parse_scenario


def _overloaded(family: str, nodes: int, tasks: int, faults: bool) -> Scenario:
    d = load_scenario(family).resized(nodes, tasks).model_dump()
    d["workload"]["load"] = 1.8  # queues build: most retries find no room
    if faults:
        d["dynamics"]["failures"] = {
            "mtbf_s": 150,
            "mttr_s": 20,
            "links": {"rate_per_hour": 40, "mean_down_s": 25},
            "sites": {"rate_per_hour": 6, "mean_down_s": 30},
        }
    return parse_scenario(d)


def _run(sc: Scenario, policy: str, shortcuts: bool) -> tuple[list[int], np.ndarray, int]:
    sim = Simulator(sc, 4)
    sim.drain_shortcuts = shortcuts
    res = sim.run(PolicyChooser(get_policy(policy)), policy)
    placed = [sim.placed_at.get(t, -1.0) for t in range(len(sim.tasks))]
    return res.decision_tasks, np.array([*placed, *res.completion_s]), res.restarts


@pytest.mark.parametrize(
    ("family", "faults", "policy"),
    [
        ("retail-chain", False, "kube-default"),
        ("retail-chain", True, "est-completion"),
        ("rail-corridor", True, "kube-default"),
        ("campus", True, "latency"),
    ],
)
def test_shortcuts_give_the_same_run(family: str, faults: bool, policy: str) -> None:
    sc = _overloaded(family, 20, 1500, faults)
    fast = _run(sc, policy, True)
    full = _run(sc, policy, False)
    assert fast[0] == full[0]
    np.testing.assert_array_equal(fast[1], full[1])
    assert fast[2] == full[2]
    assert len(fast[0]) > 1000  # the run did place its tasks (not a vacuous equality)


def test_front_covers_exactly_what_some_failure_dominates() -> None:
    rng = random.Random(7)
    for _ in range(200):
        front = _Front()
        failures: list[tuple[int, int]] = []
        for _ in range(rng.randint(1, 25)):
            c, m = rng.randrange(50, 2000, 50), rng.randint(64, 2048)
            if not any(fc <= c and fm <= m for fc, fm in failures):
                front.add(c, m)  # add takes only uncovered failures, as a drain does
                failures.append((c, m))
        for c, m in itertools.product(range(0, 2100, 50), range(0, 2200, 37)):
            want = any(fc <= c and fm <= m for fc, fm in failures)
            assert front.covers(c, m) == want, (failures, c, m)
        assert front.cpu == sorted(front.cpu)
        assert all(a > b for a, b in itertools.pairwise(front.mem))


def test_wait_queue_rows_follow_a_list_model() -> None:
    """Appends at both ends and removals keep the rows in queue order, through the buffer's
    re-centring (a plain list of rows is the model)."""
    rng = random.Random(3)
    queue = _WaitQueue(4)
    model: list[tuple[int, ...]] = []
    head = tail = 0
    sets = [queue.set_of(k, np.array(m)) for k, m in ((None, [0, 1, 2, 3]), ((0, 5.0, -1), [0, 1]))]
    for step in range(3000):
        op = rng.random()
        if op < 0.45:
            tail += 1
            row = (tail, step, rng.randint(1, 9), rng.randint(1, 9), 0, rng.choice(sets))
            queue.append(row[5], row[1], row[2], row[3])
            model.append(row)
        elif op < 0.7:
            head -= 1
            row = (head, step, rng.randint(1, 9), rng.randint(1, 9), 1, rng.choice(sets))
            queue.appendleft(row[5], row[1], row[2], row[3])
            model.insert(0, row)
        elif model:
            gone = sorted(rng.sample(range(len(model)), rng.randint(1, min(5, len(model)))))
            queue.remove(np.array(gone, dtype=np.int64))
            model = [r for i, r in enumerate(model) if i not in set(gone)]
        assert len(queue) == len(model)
        assert [tuple(r) for r in queue.rows.tolist()] == model
    assert queue.members.tolist() == [[True] * 4, [True, True, False, False]]
