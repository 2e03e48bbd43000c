"""Old scenario files keep their exact results: summaries computed with the simulator as it
was before per-site overrides, explicit links, hubs, result transfers, link and site failures,
intra-site bandwidth and per-class arrivals, sources and CPU speeds existed. A scenario that
sets none of those fields must still produce these numbers (same seed, same policy)."""

from __future__ import annotations

from typing import Any

import pytest

from edge_allocator.policy.registry import get_policy
from edge_allocator.sim.engine import run_policy
from edge_allocator.sim.scenario import builtin_scenarios, load_scenario, parse_scenario

# load_scenario(name).resized(24, 150), seed 7, est-completion
REFERENCE: dict[str, dict[str, Any]] = {
    "bursty-mixed": {
        "mean_completion_s": 2.601311316646257,
        "p95_completion_s": 8.339912180284658,
        "slo_violation_rate": 0.04,
        "mean_network_latency_ms": 0.5220462100603989,
        "cpu_imbalance": 0.2927946689031468,
        "unfinished": 0,
        "unplaceable": 0,
        "decisions": 150,
    },
    "campus": {
        "mean_completion_s": 2.127298826484927,
        "p95_completion_s": 6.7224665921228475,
        "slo_violation_rate": 0.1,
        "mean_network_latency_ms": 0.1430448975564198,
        "cpu_imbalance": 0.24515379716217642,
        "unfinished": 0,
        "unplaceable": 0,
        "decisions": 150,
    },
    "factory-floor": {
        "mean_completion_s": 2.3281465505868457,
        "p95_completion_s": 9.358131683503881,
        "slo_violation_rate": 0.06,
        "mean_network_latency_ms": 0.29330056121901893,
        "cpu_imbalance": 0.2242641015560469,
        "unfinished": 0,
        "unplaceable": 0,
        "decisions": 150,
    },
    "port-terminal": {
        "mean_completion_s": 2.0541373249828982,
        "p95_completion_s": 6.246338035422443,
        "slo_violation_rate": 0.04,
        "mean_network_latency_ms": 0.7128056230678325,
        "cpu_imbalance": 0.23694320559603543,
        "unfinished": 0,
        "unplaceable": 0,
        "decisions": 150,
    },
    "retail-chain": {
        "mean_completion_s": 2.7237794918869924,
        "p95_completion_s": 8.204985639113735,
        "slo_violation_rate": 0.06,
        "mean_network_latency_ms": 2.5196733559353532,
        "cpu_imbalance": 0.178350279700626,
        "unfinished": 0,
        "unplaceable": 0,
        "decisions": 150,
    },
    "rural": {
        "mean_completion_s": 1.751828999285454,
        "p95_completion_s": 6.029123837922021,
        "slo_violation_rate": 0.006666666666666667,
        "mean_network_latency_ms": 10.762753691413343,
        "cpu_imbalance": 0.24425702031947993,
        "unfinished": 0,
        "unplaceable": 0,
        "decisions": 150,
    },
    "smart-city": {
        "mean_completion_s": 2.385987196901881,
        "p95_completion_s": 7.447740367086624,
        "slo_violation_rate": 0.006666666666666667,
        "mean_network_latency_ms": 2.3424299919729634,
        "cpu_imbalance": 0.197803749552044,
        "unfinished": 0,
        "unplaceable": 0,
        "decisions": 150,
    },
}

# bursty-mixed resized(40, 600) with node failures (mtbf 300 s, mttr 20 s), seed 3,
# kube-default: (summary, restarts) per link-sharing model
WITH_FAILURES: dict[str, tuple[dict[str, Any], int]] = {
    "none": (
        {
            "mean_completion_s": 2.180915593417109,
            "p95_completion_s": 6.879529045012853,
            "slo_violation_rate": 0.016666666666666666,
            "mean_network_latency_ms": 7.57259352176194,
            "cpu_imbalance": 0.24016579020001214,
            "unfinished": 0,
            "unplaceable": 0,
            "decisions": 602,
        },
        2,
    ),
    "max-min": (
        {
            "mean_completion_s": 2.2043367376329805,
            "p95_completion_s": 6.776147383969522,
            "slo_violation_rate": 0.015,
            "mean_network_latency_ms": 7.292517548838648,
            "cpu_imbalance": 0.24062593968732982,
            "unfinished": 0,
            "unplaceable": 0,
            "decisions": 601,
        },
        1,
    ),
}


FIDELITY_FAMILIES = {"metro-mesh", "rail-corridor"}
"""Written for gnn 3.0.0 with the fidelity fields: no older simulator ran them."""


def test_every_older_shipped_scenario_has_a_reference() -> None:
    assert set(REFERENCE) == set(builtin_scenarios()) - FIDELITY_FAMILIES


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_shipped_scenarios_give_the_same_summary(name: str) -> None:
    res = run_policy(load_scenario(name).resized(24, 150), 7, get_policy("est-completion"))
    summary = res.summary()  # the keys the older simulator reported
    assert {k: summary[k] for k in REFERENCE[name]} == pytest.approx(REFERENCE[name], rel=1e-9)


@pytest.mark.parametrize("sharing", sorted(WITH_FAILURES))
def test_node_failures_and_link_sharing_give_the_same_summary(sharing: str) -> None:
    data = load_scenario("bursty-mixed").resized(40, 600).model_dump()
    data["dynamics"]["failures"] = {"mtbf_s": 300, "mttr_s": 20}
    data["dynamics"]["network"] = {"sharing": sharing}
    res = run_policy(parse_scenario(data), 3, get_policy("kube-default"))
    summary, restarts = WITH_FAILURES[sharing]
    now = res.summary()
    assert {k: now[k] for k in summary} == pytest.approx(summary, rel=1e-9)
    assert res.restarts == restarts
