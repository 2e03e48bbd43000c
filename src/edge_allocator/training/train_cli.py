"""``edge-allocator train``: train the placement GNN in the simulator and write a model file.

The model file, its learning curve (CSV + PNG) and the training config land next to each
other; ``--ship`` also marks the file as the model ``"gnn"`` resolves to. ``--quick`` checks the
pipeline with a toy model, so without ``--out`` it writes to a scratch path, never over a
shipped model.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
from pathlib import Path

from edge_allocator.policy.model_file import save_model
from edge_allocator.policy.registry import SHIPPED_FILE
from edge_allocator.training.trainer import (
    TrainConfig,
    Trainer,
    git_revision,
    numeric_environment,
)

DEFAULT_OUT = Path("models/gnn-3.1.0.pt")
QUICK_OUT = Path(".cache/train-quick/gnn-quick.pt")
"""Where ``--quick`` writes without ``--out``: scratch, outside ``models/``."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"model file to write (default: {DEFAULT_OUT}; with --quick: {QUICK_OUT})",
    )
    parser.add_argument("--version", default="3.1.0", help="model version recorded in the file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (1 is bit-exact)"
    )
    parser.add_argument("--ppo-iterations", type=int, default=None)
    parser.add_argument("--bc-episodes", type=int, default=None)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tiny run (seconds) to check the pipeline, not a useful model; written to "
        f"{QUICK_OUT} unless --out is given",
    )
    parser.add_argument(
        "--ship",
        action="store_true",
        help=f"write the model's file name into {SHIPPED_FILE} next to it",
    )


def quick_config(seed: int) -> TrainConfig:
    return TrainConfig(
        seed=seed,
        sizes=(8, 12),
        max_tasks=120,
        min_tasks=60,
        bc_episodes=4,
        dagger_rounds=1,
        dagger_episodes=2,
        bc_epochs=2,
        ppo_iterations=2,
        ppo_episodes=2,
        ppo_sizes=(8,),
        val_every=1,
        val_seeds=(900_001,),
        val_size=8,
    )


def output_path(args: argparse.Namespace) -> Path:
    """``--out`` when given, else the scratch path for ``--quick`` and the documented model
    path for a full run."""
    if args.out is not None:
        out: Path = args.out
        return out
    return QUICK_OUT if args.quick else DEFAULT_OUT


def run(args: argparse.Namespace) -> int:
    out = output_path(args)
    if args.quick and args.out is None:
        print(f"--quick: writing the toy model to {out} (scratch; --out to choose)", flush=True)
    cfg = quick_config(args.seed) if args.quick else TrainConfig(seed=args.seed)
    updates: dict[str, object] = {"threads": args.threads}
    if args.ppo_iterations is not None:
        updates["ppo_iterations"] = args.ppo_iterations
    if args.bc_episodes is not None:
        updates["bc_episodes"] = args.bc_episodes
    cfg = dataclasses.replace(cfg, **updates)  # type: ignore[arg-type]
    trainer = Trainer(cfg, log=lambda m: print(m, flush=True))
    stats = trainer.train()
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = save_model(
        out,
        trainer.model,
        {
            "name": "gnn",
            "version": args.version,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "git_revision": git_revision(),
            "environment": numeric_environment(),
            "training_config": cfg.to_dict(),
            "training_stats": stats,
            "command": "edge-allocator train " + " ".join(sys.argv[2:]),
        },
    )
    stem = out.with_suffix("")
    trainer.write_curve(Path(f"{stem}.curve.csv"), Path(f"{stem}.curve.png"))
    if args.ship:
        (out.parent / SHIPPED_FILE).write_text(out.name + "\n")
    print(
        f"wrote {out} (weights sha256 {meta['weights_sha256'][:12]}), "
        f"learning curve {stem}.curve.csv/.png",
        flush=True,
    )
    return 0
