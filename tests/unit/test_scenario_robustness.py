"""Scenario files written by others: edge values that are valid run, and files that cannot
run fail before any run with the file, the field and the rule (regressions of a fuzz of the
format through ``edge-allocator evaluate --scenario``)."""

from __future__ import annotations

import argparse
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from scenario_edits import assert_refused, with_changes

from edge_allocator.policy.registry import get_policy
from edge_allocator.sim.engine import PolicyChooser, Simulator
from edge_allocator.sim.generate import build_cluster, build_tasks
from edge_allocator.sim.scenario import ScenarioError, load_scenario, parse_scenario
from edge_allocator.training import evaluate_cli
from edge_allocator.training.evaluate import check_case, scenario_case

TASK: dict[str, Any] = {
    "name": "t",
    "cpu_request_m": [250, 1000],
    "mem_request_mib": [128, 512],
    "work_cpu_s": 1.0,
    "input_mb": [1, 4],
}
FLEET: dict[str, Any] = {
    "name": "fleet",
    "family": "fleet",
    "topology": {
        "nodes": 6,
        "nodes_per_site": [3, 3],
        "node_classes": [{"name": "box", "cpu_m": 4000, "mem_mib": 8192}],
    },
    "workload": {"tasks": 40, "load": 0.5, "task_classes": [TASK]},
}


def _with(**changes: Any) -> dict[str, Any]:
    return with_changes(FLEET, **changes)


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


# -- refused by the schema, naming the field and the rule -------------------------------------

BOX = {"name": "box", "cpu_m": 4000, "mem_mib": 8192}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        # non-finite numbers crashed generation (nan probabilities, 1 / inf) or gave nan results
        (
            {"topology__node_classes__0__weight": math.inf},
            "topology.node_classes.0.weight: Input should be a finite number",
        ),
        (
            {"workload__task_classes__0__work_cpu_s": math.inf},
            "workload.task_classes.0.work_cpu_s: Input should be a finite number",
        ),
        (
            {"workload__task_classes__0__input_mb": [math.nan, math.nan]},
            "workload.task_classes.0.input_mb.0: Input should be a finite number",
        ),
        (
            {"topology__link_latency_ms": [math.nan, math.nan]},
            "topology.link_latency_ms.0: Input should be a finite number",
        ),
        # pydantic takes a bool for a number: ``nodes: true`` ran one node
        ({"topology__nodes": True}, "topology: Value error, nodes: true is not a valid value"),
        ({"sites": [{"site": False}]}, "sites.0: Value error, site: false is not a valid value"),
        # a node class with no allocatable CPU divided by zero cores
        (
            {"topology__node_classes__0__cpu_m": 1},
            "topology.node_classes.0: Value error, cpu_m: 1 m leaves no allocatable CPU",
        ),
        (
            {"topology__node_classes__0__mem_mib": 1},
            "topology.node_classes.0: Value error, mem_mib: 1 MiB leaves no allocatable memory",
        ),
        # beyond 64-bit integers in the simulator
        (
            {"topology__node_classes__0__cpu_m": 10**30},
            "topology.node_classes.0.cpu_m: Input should be less than or equal to",
        ),
        (
            {"workload__task_classes__0__mem_request_mib": [1, 10**30]},
            "workload.task_classes.0: Value error, mem_request_mib: must be <= ",
        ),
        # two islands: transfers between them divided by a zero bandwidth
        (
            {"topology__links": [{"a": "x", "b": "y"}, {"a": "p", "b": "q"}]},
            "links: 'p', 'q' cannot be reached from 'x'; the links must join every site",
        ),
        # booleans inside a range or a site's class weights
        ({"topology__nodes_per_site": [True, 3]}, "nodes_per_site: true is not a valid value"),
        (
            {"workload__task_classes__0__latency_budget_ms": math.nan},
            "latency_budget_ms: Value error, Input should be a number, not nan",
        ),
        # every task unplaceable: an undefined (nan) mean completion time for every policy
        (
            {"workload__task_classes__0__cpu_request_m": [4000, 4000]},
            "workload.task_classes: no task could ever run",
        ),
        (
            {"workload__task_classes__0__mem_request_mib": [9000, 9000]},
            "at most 3800 m and 7536 MiB here",
        ),
    ],
)
def test_a_file_that_cannot_run_is_refused_naming_the_field(
    changes: dict[str, Any], message: str
) -> None:
    assert_refused(_with(**changes), message)


def test_a_class_larger_than_every_node_is_allowed_beside_one_that_fits() -> None:
    big = dict(TASK, name="big", cpu_request_m=[9000, 9000])
    sc = parse_scenario(_with(workload__task_classes=[TASK, big]))
    sim = Simulator(sc, 1)
    fits = [sim.placeable(t) for t in range(len(sim.tasks))]
    assert any(fits) and not all(fits)


def test_a_file_that_is_not_utf8_or_repeats_a_key_is_refused(tmp_path: Path) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00name: x")
    with pytest.raises(ScenarioError, match=r"binary\.yaml: not UTF-8 text"):
        load_scenario(binary)
    twice = tmp_path / "twice.yaml"
    twice.write_text(yaml.safe_dump(FLEET) + "name: again\n")
    with pytest.raises(ScenarioError, match=r"(?s)not valid YAML.*found duplicate key 'name'"):
        load_scenario(twice)
    # anchors and merge keys still work: a merged key may be given again
    merged = tmp_path / "merged.yaml"
    text = yaml.safe_dump(_with(workload__task_classes=[]))
    text = text.replace(
        "task_classes: []",
        "task_classes:\n  - &base {name: a, cpu_request_m: [250, 500], "
        "mem_request_mib: [64, 128], work_cpu_s: 1.0}\n  - {<<: *base, name: b}",
    )
    merged.write_text(text)
    assert [c.name for c in load_scenario(merged).workload.task_classes] == ["a", "b"]


# -- valid edge values run ---------------------------------------------------------------------


def test_weights_near_the_float_limit_and_a_huge_zipf_exponent_generate_cleanly() -> None:
    sc = parse_scenario(
        _with(
            topology__node_classes=[dict(BOX, weight=1e308), dict(BOX, name="b", weight=1e308)],
            workload__task_classes=[dict(TASK, weight=1e308), dict(TASK, name="u", weight=1e308)],
            workload__sources={"distribution": "zipf", "zipf_s": 1e6},
            sites=[{"site": 0, "source_weight": 1e308}],
        )
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cluster = build_cluster(sc, 1)
        tasks = build_tasks(sc, cluster, 1)
    assert {nd.node_class for nd in cluster.nodes} == {"box", "b"}
    assert set(np.unique(tasks.task_class)) == {0, 1}
    assert np.isfinite(tasks.arrival_s).all()


# -- checked per seed before any run (evaluate) --------------------------------------------------


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    evaluate_cli.configure(parser)
    return parser.parse_args(list(argv))


def test_no_data_source_fails_before_any_run_naming_file_seed_and_field(tmp_path: Path) -> None:
    """Every edge site at source_weight 0 (the hub may not be a source): generation raised a
    bare ValueError in the middle of the runs; now the file, the seed and the field."""
    path = _write(
        tmp_path / "fleet.yaml",
        _with(sites=[{"site": 0, "source_weight": 0}, {"site": 1, "source_weight": 0}]),
    )
    with pytest.raises(ScenarioError, match=r"fleet\.yaml: seed 1: workload\.sources: every edge"):
        check_case(scenario_case(str(path)), [1])
    args = _args("--scenario", str(path), "--seeds", "1", "--out-dir", str(tmp_path / "out"))
    with pytest.raises(SystemExit, match="source_weight 0"):
        evaluate_cli.run(args)
    assert not (tmp_path / "out").exists()
    # the hub may be a source of the workload's tasks, not of a class with its own sources
    data = _with(
        topology__nodes=8,
        topology__hub_nodes=2,
        workload__sources={"edge_only": False},
        workload__task_classes__0__sources={"distribution": "hotspot"},
        sites=[{"site": 0, "source_weight": 0}, {"site": 1, "source_weight": 0}],
    )
    path = _write(tmp_path / "class.yaml", data)
    with pytest.raises(ScenarioError, match=r"seed 1: workload\.task_classes\.0\.sources: every"):
        check_case(scenario_case(str(path)), [1])


def test_an_instance_where_no_task_fits_fails_before_any_run(tmp_path: Path) -> None:
    """The big class fits the tasks but no site gets one of its nodes: every task is
    unplaceable on every seed, which the schema cannot see (it is per site)."""
    data = _with(
        topology__node_classes=[BOX, dict(BOX, name="small", cpu_m=500)],
        topology__links=[{"a": "x", "b": "y"}],
        topology__nodes=4,
        workload__task_classes__0__cpu_request_m=[1000, 2000],
        sites=[
            {"site": "x", "node_classes": {"small": 1}},
            {"site": 1, "node_classes": {"small": 1}},
        ],
    )
    path = _write(tmp_path / "fleet.yaml", data)
    with pytest.raises(ScenarioError, match=r"fleet\.yaml: seed 2: no task can ever be placed"):
        check_case(scenario_case(str(path)), [2, 3])
    with pytest.raises(SystemExit, match="no task can ever be placed"):
        evaluate_cli.run(_args("--scenario", str(path), "--out-dir", str(tmp_path / "out")))


def test_a_file_resized_below_its_explicit_sites_fails_naming_the_field(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "fleet.yaml",
        _with(topology__links=[{"a": "x", "b": "y"}, {"a": "y", "b": "z"}], topology__nodes=6),
    )
    args = _args("--case", f"{path}:2:30", "--out-dir", str(tmp_path / "out"))
    with pytest.raises(SystemExit, match=r"fleet\.yaml: seed 1: topology.nodes: 2 edge nodes"):
        evaluate_cli.run(args)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--seeds", "0"], "--seeds 0: must be at least 1"),
        (["--first-seed", "-5"], "--first-seed -5: must be at least 0"),
        (["--policies", "bogus"], "--policies: unknown policy 'bogus'"),
        (["--policies", " , "], "names no policy"),
    ],
)
def test_bad_flags_fail_before_any_run(tmp_path: Path, flags: list[str], message: str) -> None:
    """These ran an empty evaluation, or died with a numpy or registry traceback part way."""
    path = _write(tmp_path / "fleet.yaml", FLEET)
    args = _args("--scenario", str(path), "--out-dir", str(tmp_path / "out"), *flags)
    with pytest.raises(SystemExit) as err:
        evaluate_cli.run(args)
    assert message in str(err.value.code)
    assert not (tmp_path / "out").exists()


def test_infinity_means_no_limit_where_a_limit_is_optional() -> None:
    """Files that wrote ``.inf`` for "unbounded" ran before: they still do, and an infinite
    budget or deadline is no budget or deadline."""
    sc = parse_scenario(
        _with(
            topology__intra_bandwidth_mbps=math.inf,
            topology__hub_bandwidth_mbps=[1000, math.inf],
            workload__task_classes=[dict(TASK, latency_budget_ms=math.inf, deadline_s=math.inf)],
            dynamics__failures={"mtbf_s": math.inf, "mttr_s": 10},
        )
    )
    assert sc.workload.task_classes[0].latency_budget_ms is None
    assert sc.workload.task_classes[0].deadline_s is None
    assert sc.topology.intra_bandwidth_mbps == math.inf
    res = Simulator(sc, 1).run(PolicyChooser(get_policy("kube-default")))
    assert res.decisions > 0 and np.isfinite(res.completion_s).all()


def test_class_names_may_repeat_unless_a_site_names_one() -> None:
    """Class names are labels: two classes of one name ran before and still do; a site's
    ``node_classes`` that names a repeated class is ambiguous and refused."""
    two = [BOX, dict(BOX, cpu_m=2000)]
    assert len(parse_scenario(_with(topology__node_classes=two)).topology.node_classes) == 2
    with pytest.raises(ScenarioError, match="two node classes have this name"):
        parse_scenario(
            _with(topology__node_classes=two, sites=[{"site": 0, "node_classes": {"box": 1}}])
        )
