"""The latency budget as node affinity, from the one topology model (pure arithmetic).

Network used throughout: a --5ms-- b --20ms-- c, and d joined to nothing.
"""

from __future__ import annotations

from typing import Any

from edge_allocator.cluster.affinity import budget_placement, combine_terms, require_terms
from edge_allocator.cluster.annotations import LABEL_ZONE
from edge_allocator.cluster.topology import UNZONED_SITE, NetworkModel, Topology

NET: dict[str, Any] = {
    "metadata": {"name": "fleet"},
    "spec": {
        "sites": [{"name": "a", "intraLatencyMs": 1}, {"name": "b"}, {"name": "c"}, {"name": "d"}],
        "links": [
            {"a": "a", "b": "b", "latencyMs": 5, "bandwidthMbps": 100},
            {"a": "b", "b": "c", "latencyMs": 20, "bandwidthMbps": 100},
        ],
    },
}


def topo(overrides: list[dict[str, str]] | None = None) -> Topology:
    net = {**NET, "spec": {**NET["spec"], "nodeOverrides": overrides or []}}
    model = NetworkModel.from_objects([net])
    return Topology(model, [("a1", "a"), ("b1", "b"), ("c1", "c"), ("x", None), ("d1", "d")])


def zones(term: dict[str, Any]) -> list[str]:
    (expr,) = term["matchExpressions"]
    assert expr["key"] == LABEL_ZONE and expr["operator"] == "In"
    return list(expr["values"])


def test_sites_within_budget_by_shortest_path() -> None:
    # a->a 1 ms (intra), a->b 5, a->c 25 (via b), d unreachable
    assert budget_placement(topo(), "a", None, 5).allowed_sites == ("a", "b")
    assert budget_placement(topo(), "a", None, 25).allowed_sites == ("a", "b", "c")
    assert budget_placement(topo(), "c", None, 24).allowed_sites == ("b", "c")
    (term,) = budget_placement(topo(), "a", None, 5).terms
    assert zones(term) == ["a", "b"]


def test_no_site_within_budget_names_the_nearest() -> None:
    p = budget_placement(topo(), "b", None, 0.5)  # b's own intra latency is the default 1 ms
    assert not p.satisfiable and p.terms == ()
    assert (p.nearest_site, p.nearest_latency_ms) == ("b", 1.0)
    assert p.unsatisfiable_message("b", 0.5) == (
        "no site is within the latency budget of 0.5 ms from site b: the nearest is b at 1 ms"
    )
    lone = budget_placement(topo(), "d", None, 0.5)  # d reaches only itself
    assert (lone.nearest_site, lone.nearest_latency_ms) == ("d", 1.0)
    unknown = budget_placement(topo(), "nowhere", None, 50)
    assert "no site is reachable" in unknown.unsatisfiable_message("nowhere", 50)


def test_data_source_node_is_always_allowed() -> None:
    p = budget_placement(topo(), "b", "b1", 0.5)
    assert p.satisfiable
    assert p.terms == (
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b1"]}]},
    )


def test_override_moves_nodes_in_and_out_of_allowed_sites() -> None:
    # c1 (labelled c, 25 ms away) is declared in a; a1 (labelled a) is declared in c
    t = topo([{"node": "c1", "site": "a"}, {"node": "a1", "site": "c"}])
    assert t.site_of("c1") == "a" and t.site_of("a1") == "c"
    p = budget_placement(t, "a", None, 5)
    zone_term, c1_term = p.terms
    assert zones(zone_term) == ["a", "b"]
    assert zone_term["matchFields"] == [
        {"key": "metadata.name", "operator": "NotIn", "values": ["a1"]}
    ]
    assert c1_term == {
        "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["c1"]}]
    }


def test_unzoned_nodes_are_in_no_site_and_extender_places_them_apart() -> None:
    t = topo()
    assert t.site_of("x") is None
    model = NetworkModel.from_objects([NET])
    assert (model.site_of("x", None) or UNZONED_SITE) == UNZONED_SITE
    assert model.class_of("x", None) == "default"


def test_class_override_wins_over_label() -> None:
    net = {**NET, "spec": {**NET["spec"], "nodeOverrides": [{"node": "a1", "nodeClass": "gpu"}]}}
    model = NetworkModel.from_objects([net])
    assert model.class_of("a1", "small") == "gpu"
    assert model.class_of("b1", "small") == "small"


def test_user_terms_are_anded_term_by_term() -> None:
    user = [
        {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]},
        {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
    ]
    ours = list(budget_placement(topo(), "b", "c1", 1).terms)  # zone b, or node c1
    out = combine_terms(user, ours)
    assert len(out) == 4
    assert out[0]["matchExpressions"][0]["key"] == "disk"
    assert out[0]["matchExpressions"][1]["key"] == LABEL_ZONE
    assert out[1]["matchExpressions"][0]["key"] == "disk"
    assert out[1]["matchFields"][0]["values"] == ["c1"]
    spec: dict[str, Any] = {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": user}
            }
        }
    }
    require_terms(spec, ours)
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == out
    assert user[0]["matchExpressions"] == [{"key": "disk", "operator": "In", "values": ["ssd"]}]


def test_links_between_undeclared_sites_still_count() -> None:
    net = {
        "metadata": {"name": "n"},
        "spec": {"links": [{"a": "p", "b": "q", "latencyMs": 3, "bandwidthMbps": 10}]},
    }
    t = Topology(NetworkModel.from_objects([net]), [("p1", "p"), ("q1", "q")])
    assert t.latency_ms("p", "q") == 3
    assert budget_placement(t, "p", None, 3).allowed_sites == ("p", "q")
