"""`edge-allocator evaluate --scenario`: a user's own scenario files, as written, in N processes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from edge_allocator.training import evaluate, evaluate_cli
from edge_allocator.training.evaluate import BOUND, Case

FLEET: dict[str, Any] = {
    "name": "my-fleet",
    "family": "shops",
    "topology": {
        "nodes": 7,
        "nodes_per_site": [2, 3],
        "shape": "star",
        "node_classes": [{"name": "box", "cpu_m": 4000, "mem_mib": 8192}],
    },
    "workload": {
        "tasks": 45,
        "load": 0.5,
        "task_classes": [
            {
                "name": "t",
                "cpu_request_m": [250, 1000],
                "mem_request_mib": [128, 512],
                "work_cpu_s": 1.0,
                "input_mb": [1, 5],
                "latency_budget_ms": 12,
                "deadline_s": 4,
            }
        ],
    },
}


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    evaluate_cli.configure(parser)
    return parser.parse_args(list(argv))


def _without_wall(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in runs]


def test_scenario_files_run_as_written_and_workers_change_nothing(tmp_path: Path) -> None:
    """Two files (one under a directory with ':' in its name): each case takes the file's
    sizes and the scenario's own name; 2 worker processes give exactly the runs of 1."""
    one = _write(tmp_path / "fleets:v2" / "my-fleet.yaml", FLEET)
    other = dict(FLEET, name="depot", topology={**FLEET["topology"], "nodes": 5})
    two = _write(tmp_path / "depot.yaml", other)
    docs = []
    for workers in ("1", "2"):
        out = tmp_path / f"out-{workers}"
        args = _args(
            "--scenario",
            str(one),
            "--scenario",
            str(two),
            "--policies",
            "kube-default,latency",
            "--seeds",
            "2",
            "--workers",
            workers,
            "--no-plots",
            "--out-dir",
            str(out),
        )
        assert evaluate_cli.run(args) == 0
        docs.append(json.loads((out / "evaluation.json").read_text()))
    serial, parallel = docs
    assert [(c["name"], c["nodes"], c["tasks"], c["split"]) for c in serial["cases"]] == [
        ("my-fleet", 7, 45, "custom"),
        ("depot", 5, 45, "custom"),
    ]
    assert {r["case"] for r in serial["runs"]} == {"my-fleet", "depot"}
    assert len(serial["runs"]) == 2 * 2 * 3  # cases x seeds x (2 policies + the bound)
    assert all(r["metrics"]["decisions"] >= 45 for r in serial["runs"] if r["policy"] != BOUND)
    assert _without_wall(parallel["runs"]) == _without_wall(serial["runs"])
    assert parallel["rows"] == serial["rows"] and parallel["summary"] == serial["summary"]


def test_a_bad_scenario_file_fails_naming_the_file_and_the_field(tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.yaml", {**FLEET, "workload": {**FLEET["workload"], "load": -1}})
    good = _write(tmp_path / "good.yaml", FLEET)
    args = _args("--scenario", str(good), "--scenario", str(bad), "--out-dir", str(tmp_path))
    with pytest.raises(SystemExit) as err:
        evaluate_cli.run(args)
    msg = str(err.value.code)
    assert f"{bad}: invalid scenario" in msg and "workload.load" in msg
    assert not (tmp_path / "evaluation.json").exists()  # checked before anything ran
    with pytest.raises(SystemExit, match="cannot read scenario file"):
        evaluate_cli.run(_args("--scenario", str(tmp_path / "missing.yaml")))


def test_two_scenarios_with_one_name_are_refused(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.yaml", FLEET)
    b = _write(tmp_path / "b.yaml", FLEET)
    with pytest.raises(SystemExit, match="two cases are named 'my-fleet'"):
        evaluate_cli.run(_args("--scenario", str(a), "--scenario", str(b)))


def test_old_case_flag_still_works_with_colons_in_paths(tmp_path: Path) -> None:
    path = _write(tmp_path / "a:b" / "fleet.yaml", FLEET)
    case = evaluate_cli._parse_case(f"{path}:6:30")
    assert case == Case("shops", 6, 30, "custom", str(path))
    assert case.name == "shops-6"  # the family, not the path
    sc = case.scenario()
    assert (sc.topology.nodes, sc.workload.tasks) == (6, 30)
    assert evaluate_cli._parse_case("rural:12") == Case("rural", 12, 300, "custom")
    with pytest.raises(SystemExit, match="expected FAMILY:NODES"):
        evaluate_cli._parse_case(str(path))


def test_threads_are_applied_here_and_in_every_worker() -> None:
    before = torch.get_num_threads()
    try:
        evaluate._init_worker(2)
        assert torch.get_num_threads() == 2
        evaluate.run_matrix([], [], [], threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_stopped_evaluation_resumes_from_its_partial_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every finished run is on disk at once: an evaluation that dies part-way leaves
    ``runs.partial.json``, and ``--reuse`` of it re-runs only what was missing, with the
    result of an uninterrupted evaluation."""
    fleet = _write(tmp_path / "my-fleet.yaml", FLEET)
    argv = ["--scenario", str(fleet), "--policies", "kube-default,latency", "--seeds", "2"]
    argv += ["--no-plots"]
    whole = tmp_path / "whole"
    assert evaluate_cli.run(_args(*argv, "--out-dir", str(whole))) == 0
    expected = json.loads((whole / "evaluation.json").read_text())
    assert not (whole / evaluate_cli.PARTIAL).exists()  # all of it is in evaluation.json

    real_job = evaluate._run_job
    ran: list[tuple[int, str]] = []

    def dies_at_the_fourth(
        case: Case, seed: int, policy: str, work_hidden: bool = False
    ) -> evaluate.Run:
        if len(ran) == 3:
            raise KeyboardInterrupt  # the user stops it
        ran.append((seed, policy))
        return real_job(case, seed, policy, work_hidden)

    monkeypatch.setattr(evaluate, "_run_job", dies_at_the_fourth)
    out = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt):
        evaluate_cli.run(_args(*argv, "--out-dir", str(out)))
    partial = json.loads((out / evaluate_cli.PARTIAL).read_text())["runs"]
    assert [(r["seed"], r["policy"]) for r in partial] == ran
    assert not (out / "evaluation.json").exists()

    ran.clear()
    monkeypatch.setattr(evaluate, "_run_job", real_job)
    reuse = ["--reuse", str(out / evaluate_cli.PARTIAL)]
    assert evaluate_cli.run(_args(*argv, *reuse, "--out-dir", str(out))) == 0
    resumed = json.loads((out / "evaluation.json").read_text())
    assert resumed["rows"] == expected["rows"] and resumed["summary"] == expected["summary"]
    assert len(resumed["runs"]) == len(expected["runs"])
