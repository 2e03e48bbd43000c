"""``edge-allocator evaluate``: compare policies in the simulator and print the table.

Writes ``evaluation.json`` (every run, per-case means with 95% CIs, paired comparisons, a per
split summary) and ``eval-<split>.png`` into ``--out-dir``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from edge_allocator.policy.registry import policy_names
from edge_allocator.training.evaluate import (
    DEPLOYABLE_BASELINES,
    ORACLE,
    Case,
    Run,
    aggregate,
    default_cases,
    quick_cases,
    run_matrix,
    runs_as_dicts,
    split_summary,
)
from edge_allocator.training.report import plots, summary_lines, table
from edge_allocator.training.stats import nan_to_none


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policies",
        default="",
        help="comma-separated names (default: gnn if shipped, every baseline, "
        "and the greedy-oracle reference)",
    )
    parser.add_argument("--seeds", type=int, default=5, help="seeds per case (default 5)")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument(
        "--split", choices=["all", "train", "heldout", "heldout-large"], default="all"
    )
    parser.add_argument(
        "--case",
        action="append",
        default=[],
        help="FAMILY:NODES[:TASKS] instead of the default matrix (repeatable)",
    )
    parser.add_argument("--quick", action="store_true", help="two small cases (a minute)")
    parser.add_argument("--out-dir", type=Path, default=Path("artifacts/eval"))
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument(
        "--reuse",
        type=Path,
        default=None,
        help="an earlier evaluation.json whose runs (same case, policy, seed) are taken "
        "instead of re-run, e.g. the baselines when only the model changed",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: serving-like, and no oversubscription)",
    )
    parser.add_argument(
        "--card",
        type=Path,
        default=None,
        help="model file whose card (<stem>.card.md/.json) to write from this evaluation",
    )


def _parse_case(text: str) -> Case:
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise SystemExit(f"--case {text!r}: expected FAMILY:NODES[:TASKS]")
    nodes = int(parts[1])
    tasks = int(parts[2]) if len(parts) == 3 else min(max(15 * nodes, 300), 3000)
    return Case(parts[0], nodes, tasks, "custom")


def run(args: argparse.Namespace) -> int:
    if args.policies:
        policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    else:
        policies = [p for p in policy_names() if p not in DEPLOYABLE_BASELINES]
        policies += [*list(DEPLOYABLE_BASELINES), ORACLE]
    if args.case:
        cases = [_parse_case(c) for c in args.case]
    elif args.quick:
        cases = quick_cases()
    else:
        cases = default_cases()
    if args.split != "all":
        cases = [c for c in cases if c.split == args.split]
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    t0 = time.perf_counter()
    print(
        f"evaluating {len(policies)} policies x {len(cases)} cases x {len(seeds)} seeds", flush=True
    )
    reused: list[Run] = []
    if args.reuse is not None:
        old = json.loads(args.reuse.read_text())["runs"]
        wanted = {(c.name, c.split) for c in cases}
        reused = [
            Run(**r)
            for r in old
            if (r["case"], r["split"]) in wanted and r["policy"] in policies and r["seed"] in seeds
        ]
    done = {(r.case, r.policy, r.seed) for r in reused}
    runs = reused + run_matrix(
        policies, cases, seeds, log=lambda m: print(m, flush=True), skip=done
    )
    agg = aggregate(runs)
    summary = split_summary(agg)
    print()
    print(table(agg))
    print(summary_lines(summary))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "policies": policies,
        "seeds": seeds,
        "cases": [c.__dict__ | {"name": c.name} for c in cases],
        "rows": agg["rows"],
        "paired": agg["paired"],
        "summary": summary,
        "runs": runs_as_dicts(runs),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    out = args.out_dir / "evaluation.json"
    out.write_text(json.dumps(nan_to_none(doc), indent=1))
    written = [] if args.no_plots else plots(agg, args.out_dir)
    print(f"\nwrote {out}" + "".join(f", {p}" for p in written))
    if args.card is not None:
        from edge_allocator.policy.model_file import read_model_file
        from edge_allocator.training.model_card import quick_check, write_card

        meta, _ = read_model_file(args.card)
        command = "edge-allocator evaluate " + " ".join(sys.argv[2:])
        paths = write_card(args.card.with_suffix(""), meta, doc, quick_check(), command)
        print("wrote " + ", ".join(str(p) for p in paths))
    return 0
