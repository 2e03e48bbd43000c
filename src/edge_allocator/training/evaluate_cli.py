"""``edge-allocator evaluate``: compare policies in the simulator and print the table.

Writes ``evaluation.json`` (every run, per-case means with 95% CIs, paired comparisons, a per
split summary) and ``eval-<split>.png`` into ``--out-dir``.

``--scenario FILE`` (repeatable) evaluates a user's own scenario files as written: sizes from
the file, the case named after the scenario's ``name``. ``--workers N`` spreads the runs over N
processes with the same results as one. Each run is written to ``runs.partial.json`` as it
finishes, so a stopped evaluation goes on where it was with ``--reuse <out-dir>/runs.partial.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from edge_allocator.policy.model_file import ModelLoadError
from edge_allocator.policy.registry import UnknownPolicyError, policy_names
from edge_allocator.sim.scenario import ScenarioError, load_scenario
from edge_allocator.training.evaluate import (
    BOUND,
    DEPLOYABLE_BASELINES,
    ORACLE,
    Case,
    Run,
    aggregate,
    check_case,
    default_cases,
    make_policy,
    quick_cases,
    run_matrix,
    runs_as_dicts,
    scenario_case,
    split_summary,
)
from edge_allocator.training.report import plots, summary_lines, table
from edge_allocator.training.stats import nan_to_none

PARTIAL = "runs.partial.json"


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
        "--split",
        choices=["all", "train", "heldout", "heldout-large"],
        default="all",
        help="which part of the default matrix to run (ignored with --scenario/--case)",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="FILE",
        help="a scenario YAML file, run as written: sizes from the file, the case named "
        "after its 'name' (repeatable; replaces the default matrix)",
    )
    parser.add_argument(
        "--case",
        action="append",
        default=[],
        metavar="FAMILY:NODES[:TASKS]",
        help="a built-in family or scenario file resized to NODES nodes (and TASKS tasks); "
        "to run a file at its own sizes use --scenario (repeatable)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes to run the cases in (default 1; results are the same for any N)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="two small cases (a few minutes on 2 cores)"
    )
    parser.add_argument("--out-dir", type=Path, default=Path("artifacts/eval"))
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument(
        "--reuse",
        type=Path,
        action="append",
        default=[],
        help="an earlier evaluation.json whose runs (same case, policy, seed) are taken "
        "instead of re-run, e.g. the baselines when only the model changed (repeatable: "
        "the first file that has a run gives it)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per process (1: serving-like, and no oversubscription)",
    )
    parser.add_argument(
        "--work-hidden",
        action="store_true",
        help="deployable policies see tasks without their CPU-seconds of work, as on a live "
        "cluster where no pod declares it (the greedy oracle still knows it); do not --reuse "
        "runs made without it",
    )
    parser.add_argument(
        "--card",
        type=Path,
        default=None,
        help="model file whose card (<stem>.card.md/.json) to write from this evaluation",
    )


def _parse_case(text: str) -> Case:
    """``FAMILY:NODES[:TASKS]``, split from the right so a path may contain ':'."""
    head, _, last = text.rpartition(":")
    if not head or not last.isdigit():
        raise SystemExit(f"--case {text!r}: expected FAMILY:NODES[:TASKS] (NODES a number)")
    first, _, mid = head.rpartition(":")
    if first and mid.isdigit():
        source, nodes, tasks = first, int(mid), int(last)
    else:
        source, nodes = head, int(last)
        tasks = min(max(15 * nodes, 300), 3000)
    if nodes < 1 or tasks < 1:
        raise SystemExit(f"--case {text!r}: NODES and TASKS must be at least 1")
    scenario = load_scenario(source)  # a file or a built-in family; fails naming the field
    is_file = Path(source).suffix in (".yaml", ".yml") or Path(source).exists()
    return Case(scenario.family, nodes, tasks, "custom", source if is_file else "")


def _cases(args: argparse.Namespace) -> list[Case]:
    """The cases asked for, every file checked before anything runs (its schema, then the
    instance of every seed it will run: :func:`check_case`)."""
    if args.scenario or args.case:
        cases = [scenario_case(p) for p in args.scenario] + [_parse_case(c) for c in args.case]
        seen: dict[str, str] = {}
        for c in cases:
            where = c.path or c.family
            if c.name in seen:
                raise SystemExit(
                    f"two cases are named {c.name!r} ({seen[c.name]} and {where}); "
                    "give the scenarios different 'name' fields"
                )
            seen[c.name] = where
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        for c in cases:
            check_case(c, seeds)
        return cases
    cases = quick_cases() if args.quick else default_cases()
    return cases if args.split == "all" else [c for c in cases if c.split == args.split]


def run(args: argparse.Namespace) -> int:
    if args.policies:
        # each once, in the order given
        policies = list(dict.fromkeys(p.strip() for p in args.policies.split(",") if p.strip()))
        if not policies:
            raise SystemExit(f"--policies {args.policies!r}: names no policy")
        for name in policies:  # an unknown name fails now, not after the first runs
            try:
                make_policy(name)
            except (UnknownPolicyError, ModelLoadError) as exc:
                raise SystemExit(f"--policies: {exc}") from None
    else:
        policies = [p for p in policy_names() if p not in DEPLOYABLE_BASELINES]
        policies += [*list(DEPLOYABLE_BASELINES), ORACLE]
    if args.seeds < 1:
        raise SystemExit(f"--seeds {args.seeds}: must be at least 1")
    if args.first_seed < 0:
        raise SystemExit(f"--first-seed {args.first_seed}: must be at least 0")
    if args.workers < 1:
        raise SystemExit(f"--workers {args.workers}: must be at least 1")
    if args.threads < 1:
        raise SystemExit(f"--threads {args.threads}: must be at least 1")
    try:
        cases = _cases(args)
    except ScenarioError as exc:
        raise SystemExit(f"edge-allocator evaluate: {exc}") from None
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    t0 = time.perf_counter()
    print(
        f"evaluating {len(policies)} policies x {len(cases)} cases x {len(seeds)} seeds "
        f"({args.workers} process{'es' if args.workers > 1 else ''}, "
        f"{args.threads} torch thread{'s' if args.threads > 1 else ''} each)",
        flush=True,
    )
    reused: list[Run] = []
    done: set[tuple[str, str, int]] = set()
    wanted = {(c.name, c.split): set(c.seeds_of(seeds)) for c in cases}
    for path in args.reuse:
        for r in json.loads(path.read_text())["runs"]:
            key = (r["case"], r["policy"], r["seed"])
            if (
                r["seed"] in wanted.get((r["case"], r["split"]), ())
                and r["policy"] in policies
                and key not in done
            ):
                reused.append(Run(**r))
                done.add(key)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    partial = args.out_dir / PARTIAL
    finished: list[Run] = list(reused)

    def keep(run: Run) -> None:
        """Write every finished run at once, so a stopped evaluation resumes with
        ``--reuse <out-dir>/runs.partial.json``."""
        finished.append(run)
        tmp = partial.with_suffix(".tmp")
        tmp.write_text(json.dumps(nan_to_none({"runs": runs_as_dicts(finished)})))
        tmp.replace(partial)

    runs = reused + run_matrix(
        policies,
        cases,
        seeds,
        log=lambda m: print(m, flush=True),
        skip=done,
        workers=args.workers,
        threads=args.threads,
        on_run=keep,
        work_hidden=args.work_hidden,
    )
    # reused or not, the order of one uninterrupted run: per case the bound, then each policy
    case_at = {c.name: i for i, c in enumerate(cases)}
    policy_at = {p: i for i, p in enumerate([BOUND, *policies])}
    runs.sort(key=lambda r: (case_at[r.case], policy_at[r.policy], r.seed))
    agg = aggregate(runs)
    summary = split_summary(agg)
    print()
    print(table(agg))
    print(summary_lines(summary))
    doc = {
        "policies": policies,
        "seeds": seeds,
        "work_hidden": args.work_hidden,
        "cases": [c.__dict__ | {"name": c.name} for c in cases],
        "rows": agg["rows"],
        "paired": agg["paired"],
        "summary": summary,
        "runs": runs_as_dicts(runs),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    out = args.out_dir / "evaluation.json"
    out.write_text(json.dumps(nan_to_none(doc), indent=1))
    partial.unlink(missing_ok=True)  # everything is in evaluation.json now
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
