"""Model cards: what a shipped model was trained on, how to reproduce it, how it scored.

The card (Markdown for people, JSON for tests and tools) sits next to the model file. Its
``quick_check`` is a small deterministic evaluation whose policy ranking a unit test
recomputes, so a card that no longer matches its model fails ``make test``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge_allocator.training.evaluate import Case, default_cases, quick_cases, run_matrix
from edge_allocator.training.report import summary_lines, table
from edge_allocator.training.stats import nan_to_none

QUICK_POLICIES = ("gnn", "kube-default", "est-completion", "latency", "random")
QUICK_SEEDS = (1, 2, 3)


def quick_check(
    policies: tuple[str, ...] = QUICK_POLICIES,
    cases: list[Case] | None = None,
    seeds: tuple[int, ...] = QUICK_SEEDS,
) -> dict[str, Any]:
    """Mean completion per policy over small cases and seeds, and the resulting ranking."""
    cases = cases or quick_cases()
    runs = run_matrix(policies, cases, seeds)
    means: dict[str, float] = {}
    for p in policies:
        vals = [r.metrics["mean_completion_s"] for r in runs if r.policy == p]
        means[p] = sum(vals) / len(vals)
    ranking = sorted(policies, key=lambda p: means[p])
    return {
        "policies": list(policies),
        "cases": [c.name for c in cases],
        "tasks": [c.tasks for c in cases],
        "seeds": list(seeds),
        "mean_completion_s": means,
        "ranking": ranking,
    }


def without_reuse(command: str) -> tuple[str, bool]:
    """The evaluate command without ``--reuse FILE`` (a local shortcut a reader cannot
    repeat), and whether it had one."""
    words = command.split()
    out: list[str] = []
    skip = False
    reused = False
    for w in words:
        if skip:
            skip = False
        elif w == "--reuse":
            skip = reused = True
        elif w.startswith("--reuse="):
            reused = True
        else:
            out.append(w)
    return " ".join(out), reused


def _missing_splits(evaluation: dict[str, Any]) -> list[str]:
    """A section naming the default matrix's cases this evaluation did not run (a card
    states what it does not show)."""
    ran = {r["case"] for r in evaluation["rows"]}
    missing = [c for c in default_cases() if c.name not in ran]
    if not missing:
        return []
    by_split: dict[str, list[str]] = {}
    for c in missing:
        by_split.setdefault(c.split, []).append(c.name)
    lines = ["## Not evaluated for this card", ""]
    lines += [f"- {split}: {', '.join(names)}" for split, names in by_split.items()]
    return [*lines, ""]


def _seed_counts(rows: list[dict[str, Any]]) -> str:
    """``3 seeds`` or, where cases ran different numbers, ``3 seeds (1 at 1000 nodes)``-like
    text from the rows' own seed counts."""
    counts: dict[int, list[str]] = {}
    for r in rows:
        counts.setdefault(int(r["seeds"]), []).append(r["case"])
    if not counts:
        return "no seeds"
    most = max(counts, key=lambda n: len(counts[n]))
    out = f"{most} seeds"
    others = [
        f"{n} for {', '.join(dict.fromkeys(cs))}" for n, cs in sorted(counts.items()) if n != most
    ]
    return out + (f" ({'; '.join(others)})" if others else "")


def write_card(
    stem: Path,
    model_meta: dict[str, Any],
    evaluation: dict[str, Any],
    quick: dict[str, Any],
    eval_command: str,
) -> tuple[Path, Path]:
    """Write ``<stem>.card.json`` and ``<stem>.card.md``."""
    eval_command, reused = without_reuse(eval_command)
    agg = {"rows": evaluation["rows"], "paired": evaluation["paired"]}
    heldout = {
        "rows": [r for r in agg["rows"] if r["split"].startswith("heldout")],
        "paired": [p for p in agg["paired"] if p["split"].startswith("heldout")],
    }
    train = {
        "rows": [r for r in agg["rows"] if r["split"] == "train"],
        "paired": [p for p in agg["paired"] if p["split"] == "train"],
    }
    tc = model_meta.get("training_config", {})
    card = {
        "name": model_meta.get("name"),
        "version": model_meta.get("version"),
        "file": stem.name + ".pt",
        "weights_sha256": model_meta.get("weights_sha256"),
        "feature_schema_version": model_meta.get("feature_schema_version"),
        "git_revision": model_meta.get("git_revision"),
        "environment": model_meta.get("environment"),
        "created_at": model_meta.get("created_at"),
        "model_config": model_meta.get("model_config"),
        "training_config": tc,
        "training_stats": model_meta.get("training_stats"),
        "reproduce": {
            "train": model_meta.get("command", "edge-allocator train"),
            "evaluate": eval_command,
        },
        "evaluation": {
            "seeds": evaluation["seeds"],
            "cases": evaluation["cases"],
            "summary": evaluation["summary"],
            "rows": evaluation["rows"],
            "paired": evaluation["paired"],
        },
        "quick_check": quick,
    }
    json_path = Path(f"{stem}.card.json")
    json_path.write_text(json.dumps(nan_to_none(card), indent=1))
    stats = model_meta.get("training_stats", {})
    md = [
        f"# Model card: {card['name']} {card['version']}",
        "",
        "A graph neural network that scores candidate nodes for one task at a time "
        "(site-graph message passing, a task-conditioned per-candidate head).",
        "",
        "## Training",
        "",
        f"- Families: {', '.join(tc.get('families', []))}; sizes {tc.get('sizes')} nodes; "
        f"offered load x{tc.get('load_scales', [1.0])}; seed {tc.get('seed')}.",
        f"- Imitation of `{tc.get('teacher')}` ({tc.get('bc_episodes')} episodes, "
        f"{tc.get('dagger_rounds')} DAgger rounds), then PPO ({tc.get('ppo_iterations')} "
        f"iterations x {tc.get('ppo_episodes')} rollouts on one arrival sequence each).",
        f"- Wall time {stats.get('train_seconds')} s on {tc.get('threads')} threads; best "
        f"validation checkpoint: {stats.get('best_checkpoint')} (validation mean completion "
        f"{stats.get('best_validation_ratio', float('nan')):.4f} x the teacher's).",
        f"- Feature schema v{card['feature_schema_version']}, git {card['git_revision']}, "
        f"weights sha256 `{str(card['weights_sha256'])[:16]}…`.",
        *(
            [
                "- Trained with "
                + ", ".join(f"{k} {v}" for k, v in card["environment"].items())
                + " (another CPU or library version rounds differently and trains other "
                "weights from the same seed)."
            ]
            if card["environment"]
            else []
        ),
        "",
        "## Reproduce",
        "",
        "```",
        str(card["reproduce"]["train"]),
        eval_command,
        "```",
        "",
        *(
            [
                "(This card's evaluation took some runs from an earlier evaluation with "
                "`--reuse`: identical policy, case and seed, so identical results; the "
                "command above recomputes everything.)",
                "",
            ]
            if reused
            else []
        ),
        "## Summary",
        "",
        "```",
        summary_lines(evaluation["summary"]),
        "```",
        "",
        "Relative changes are paired per seed (common random numbers), mean over cases; "
        'negative is better for the GNN. "best heuristic" is the best deployable baseline '
        "on each case, chosen after the fact. `no-contention-bound` is not a policy: each "
        "task alone on the node that would finish it first, a floor no placement can beat. "
        '"1-choice %" is the share of the policy\'s decisions that had a single candidate '
        "(no policy could have chosen otherwise there; a queue of pods waiting for room "
        "makes most decisions so).",
        "",
        f"## Held-out scenarios ({_seed_counts(heldout['rows'])}, 95% CI)",
        "",
        "```",
        table(heldout),
        "```",
        "",
        "## Training families",
        "",
        *(["```", table(train), "```"] if train["rows"] else ["Not run for this card."]),
        "",
        *_missing_splits(evaluation),
        "## Quick check (recomputed by the unit tests)",
        "",
        f"Ranking by mean completion on {', '.join(quick['cases'])}, seeds {quick['seeds']}: "
        + " < ".join(quick["ranking"]),
        "",
    ]
    md_path = Path(f"{stem}.card.md")
    md_path.write_text("\n".join(md))
    return json_path, md_path
