"""Evaluation: confidence intervals, paired comparisons, the harness and its outputs."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest

from edge_allocator.training import evaluate_cli
from edge_allocator.training.evaluate import (
    BOUND,
    Case,
    Run,
    aggregate,
    run_matrix,
    split_summary,
)
from edge_allocator.training.model_card import without_reuse
from edge_allocator.training.report import table
from edge_allocator.training.stats import mean_ci, nan_to_none, paired_relative, t975


def test_mean_ci_uses_the_t_distribution() -> None:
    m, ci = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert m == 3.0
    assert ci == pytest.approx(2.776 * math.sqrt(2.5 / 5))
    assert math.isnan(mean_ci([4.0])[1])
    assert t975(4) == 2.776 and t975(11) == 2.228 and t975(500) == 1.96


def test_paired_relative_difference() -> None:
    m, ci = paired_relative([9.0, 18.0, 27.0], [10.0, 20.0, 30.0])
    assert m == pytest.approx(-0.1)
    assert ci == pytest.approx(0.0, abs=1e-12)


def _runs() -> list[Run]:
    out = []
    for seed in (1, 2, 3):
        for policy, ct, slo in (
            ("gnn", 1.0, 0.1),
            ("kube-default", 2.0, 0.2),
            ("est-completion", 1.1 + 0.01 * seed, 0.05),
            ("random", 3.0, 0.3),
        ):
            metrics = {
                "mean_completion_s": ct * seed,
                "p95_completion_s": 3 * ct * seed,
                "slo_violation_rate": slo,
                "mean_network_latency_ms": 1.0,
                "cpu_imbalance": 0.2,
            }
            out.append(Run("c-10", "heldout", seed, policy, metrics, 0.1))
    return out


def test_aggregate_picks_the_best_heuristic_and_pairs_by_seed() -> None:
    agg = aggregate(_runs())
    assert len(agg["rows"]) == 4
    best = [p for p in agg["paired"] if p["is_best_heuristic"]]
    assert [p["versus"] for p in best] == ["est-completion"]
    kube = next(p for p in agg["paired"] if p["versus"] == "kube-default")
    assert kube["completion_rel"] == pytest.approx(-0.5)
    summary = split_summary(agg)["heldout"]
    assert summary["vs_kube_default_mean"] == pytest.approx(-0.5)
    assert summary["vs_best_heuristic_worst"] < 0
    assert summary["slo_higher_than"] == ["est-completion@c-10"]
    text = table(agg)
    assert "c-10 [heldout]" in text and "-50.0%" in text and "(best)" in text


def test_harness_runs_policies_on_common_seeds() -> None:
    cases = [Case("rural", 8, 60, "train")]
    runs = run_matrix(["kube-default", "latency", "greedy-oracle"], cases, [1, 2])
    assert {(r.policy, r.seed) for r in runs} == {
        (p, s) for p in ("kube-default", "latency", "greedy-oracle", BOUND) for s in (1, 2)
    }
    assert all(r.metrics["decisions"] >= 60 for r in runs if r.policy != BOUND)
    # the contention-free bound is below what any policy achieves on the same seed
    bound = {r.seed: r.metrics["mean_completion_s"] for r in runs if r.policy == BOUND}
    for r in runs:
        assert 0 < bound[r.seed] <= r.metrics["mean_completion_s"] + 1e-9


def test_work_hidden_changes_what_a_work_reading_policy_sees_but_not_the_oracle() -> None:
    """est-completion ranks by work / rate: without the work (as live) it decides otherwise on
    some runs; latency never reads work, and the oracle keeps it as the reference."""
    cases = [Case("smart-city", 12, 120, "train")]
    policies = ["est-completion", "latency", "greedy-oracle"]
    seen = run_matrix(policies, cases, [1, 2])
    hidden = run_matrix(policies, cases, [1, 2], work_hidden=True)
    ct = {
        (r.policy, r.seed, w): r.metrics["mean_completion_s"]
        for w, runs in ((False, seen), (True, hidden))
        for r in runs
    }
    for p in ("latency", "greedy-oracle"):
        assert all(ct[(p, s, False)] == ct[(p, s, True)] for s in (1, 2))
    assert any(ct[("est-completion", s, False)] != ct[("est-completion", s, True)] for s in (1, 2))


def test_evaluate_cli_writes_table_json_and_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    evaluate_cli.configure(parser)
    args = parser.parse_args(
        [
            "--case",
            "factory-floor:8:60",
            "--policies",
            "kube-default,est-completion",
            "--seeds",
            "2",
            "--out-dir",
            str(tmp_path),
        ]
    )
    assert evaluate_cli.run(args) == 0
    out = capsys.readouterr().out
    assert "== factory-floor-8 [custom] ==" in out
    doc = json.loads((tmp_path / "evaluation.json").read_text())
    assert {r["policy"] for r in doc["rows"]} == {"kube-default", "est-completion", BOUND}
    assert len(doc["runs"]) == 6
    assert (tmp_path / "eval-custom.png").stat().st_size > 1000


def test_evaluate_cli_reuses_earlier_runs(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    evaluate_cli.configure(parser)
    first = tmp_path / "first"
    base = ["--case", "rural:8:50", "--seeds", "2", "--no-plots"]
    evaluate_cli.run(parser.parse_args([*base, "--policies", "latency", "--out-dir", str(first)]))
    second = tmp_path / "second"
    evaluate_cli.run(
        parser.parse_args(
            [
                *base,
                "--policies",
                "latency,kube-default",
                "--out-dir",
                str(second),
                "--reuse",
                str(first / "evaluation.json"),
            ]
        )
    )
    old = json.loads((first / "evaluation.json").read_text())["runs"]
    new = json.loads((second / "evaluation.json").read_text())["runs"]
    assert [r for r in new if r["policy"] == "latency"] == [
        r for r in old if r["policy"] == "latency"
    ]
    assert sorted(r["seed"] for r in new if r["policy"] == "kube-default") == [1, 2]


def test_table_prints_missing_values_as_dashes_from_json_too() -> None:
    """The bound row has only a mean; after a JSON round trip its NaNs are nulls. A metric
    the run does not carry at all (the 1-choice share, from a file older than it) is a dash."""
    runs = [*_runs(), Run("c-10", "heldout", 1, BOUND, {"mean_completion_s": 0.5}, 0.0)]
    runs[-1].metrics.update({m: math.nan for m in ("p95_completion_s", "slo_violation_rate")})
    runs[-1].metrics.update({"mean_network_latency_ms": math.nan, "cpu_imbalance": math.nan})
    agg = json.loads(json.dumps(nan_to_none(aggregate(runs))))
    line = next(x for x in table(agg).splitlines() if x.startswith(BOUND))
    assert line.split()[1:] == ["0.50", "-", "-", "-", "-", "-"]


def test_card_command_drops_the_local_reuse_file() -> None:
    cmd = "edge-allocator evaluate --seeds 5 --reuse /tmp/x.json --card m.pt"
    assert without_reuse(cmd) == ("edge-allocator evaluate --seeds 5 --card m.pt", True)
    assert without_reuse("edge-allocator evaluate --reuse=/tmp/x.json") == (
        "edge-allocator evaluate",
        True,
    )
    assert without_reuse("edge-allocator evaluate --quick") == (
        "edge-allocator evaluate --quick",
        False,
    )


def test_a_case_with_max_seeds_runs_only_its_first_seeds() -> None:
    cases = [Case("rural", 8, 60, "train"), Case("rural", 10, 60, "heldout-large", max_seeds=1)]
    runs = run_matrix(["kube-default"], cases, [1, 2, 3], workers=1)
    seeds = {(r.case, r.seed) for r in runs if r.policy == "kube-default"}
    assert seeds == {("rural-8", 1), ("rural-8", 2), ("rural-8", 3), ("rural-10", 1)}
    agg = aggregate(runs, focus="kube-default")
    one = next(r for r in agg["rows"] if r["case"] == "rural-10" and r["policy"] == BOUND)
    assert one["seeds"] == 1


def test_the_table_prints_no_interval_for_one_seed() -> None:
    runs = [r for r in _runs() if r.seed == 1]
    text = table(aggregate(runs))
    assert "nan" not in text and "-50.0%" in text


def test_evaluate_cli_reuses_runs_from_several_files(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    evaluate_cli.configure(parser)
    base = ["--case", "rural:8:50", "--seeds", "2", "--no-plots"]
    for name, policy in (("a", "latency"), ("b", "kube-default")):
        evaluate_cli.run(
            parser.parse_args([*base, "--policies", policy, "--out-dir", str(tmp_path / name)])
        )
    both = tmp_path / "both"
    evaluate_cli.run(
        parser.parse_args(
            [
                *base,
                "--policies",
                "latency,kube-default",
                "--out-dir",
                str(both),
                "--reuse",
                str(tmp_path / "a" / "evaluation.json"),
                "--reuse",
                str(tmp_path / "b" / "evaluation.json"),
            ]
        )
    )
    new = json.loads((both / "evaluation.json").read_text())["runs"]
    for name, policy in (("a", "latency"), ("b", "kube-default")):
        old = json.loads((tmp_path / name / "evaluation.json").read_text())["runs"]
        # taken over as they were, wall time included: not run again
        assert [r for r in new if r["policy"] == policy] == [
            r for r in old if r["policy"] == policy
        ]


def test_the_card_names_the_default_cases_it_did_not_run() -> None:
    from edge_allocator.training.evaluate import default_cases
    from edge_allocator.training.model_card import _missing_splits

    cases = default_cases()
    ran = [{"case": c.name} for c in cases if c.split != "heldout-large"]
    lines = _missing_splits({"rows": ran})
    large = [c.name for c in cases if c.split == "heldout-large"]
    assert lines[0] == "## Not evaluated for this card"
    assert lines[2] == "- heldout-large: " + ", ".join(large)
    assert _missing_splits({"rows": [{"case": c.name} for c in cases]}) == []
