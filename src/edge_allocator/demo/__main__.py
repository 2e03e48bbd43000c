"""``python -m edge_allocator.demo up|down``: what ``make demo`` and ``make demo-down`` run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_allocator.demo.run import Demo, DemoError, DemoSettings
from edge_allocator.devcluster import BuildError, DevClusterError
from edge_allocator.devcluster.cluster import CLUSTER_NAME, DEFAULT_API_PORT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_allocator.demo", description=__doc__)
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("--nodes", type=int, default=20, help="simulated edge nodes (20)")
    parser.add_argument("--burst", type=int, default=8, help="small inference tasks (8)")
    parser.add_argument("--policy", default="auto", help="extender policy (auto: shipped model)")
    parser.add_argument("--namespace", default="demo")
    parser.add_argument("--port", type=int, default=DEFAULT_API_PORT, help="API server port")
    parser.add_argument(
        "--cluster-state",
        type=Path,
        default=None,
        help="state directory of the cluster (default .cache/devcluster)",
    )
    parser.add_argument("--cluster-name", default=CLUSTER_NAME)
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="the demo's pid files and logs (default .cache/demo)",
    )
    args = parser.parse_args(argv)
    demo = Demo(
        DemoSettings(
            nodes=args.nodes, burst=args.burst, policy=args.policy,
            namespace=args.namespace, api_port=args.port,
            cluster_state_root=args.cluster_state, cluster_name=args.cluster_name,
            **({"state_dir": args.state_dir} if args.state_dir else {}),
        )
    )  # fmt: skip
    try:
        if args.action == "up":
            demo.up()
        else:
            demo.down()
    except (DemoError, DevClusterError, BuildError, ValueError) as exc:
        print(f"[demo] failed: {exc}", file=sys.stderr)
        if args.action == "up":
            print("[demo] processes are left running for inspection; make demo-down stops them",
                  file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
