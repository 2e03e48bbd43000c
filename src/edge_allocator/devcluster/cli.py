"""``edge-allocator dev up|down|status|build``: the dev cluster from the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge_allocator.devcluster.build import BuildError, ensure_binaries
from edge_allocator.devcluster.cluster import DEFAULT_API_PORT, DevCluster, DevClusterError
from edge_allocator.devcluster.fleet import FleetSpec
from edge_allocator.devcluster.image import ImageBuilder, ImageError
from edge_allocator.devcluster.prereqs import PrerequisiteError
from edge_allocator.devcluster.realnode import RealNodeError


def _scheduler_arg(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"--scheduler expects NAME=CONFIG.yaml, got {text!r}")
    if not Path(path).is_file():
        raise argparse.ArgumentTypeError(f"--scheduler {name}: no such file {path!r}")
    return name, Path(path)


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dev_command", metavar="ACTION", required=True)
    up = sub.add_parser("up", help="start the cluster (idempotent) and create the edge fleet")
    up.add_argument("--nodes", type=int, default=12, help="number of edge nodes (default 12)")
    up.add_argument("--sites", default="site-a,site-b,site-c", help="comma-separated site names")
    up.add_argument("--port", type=int, default=DEFAULT_API_PORT, help="API server port")
    up.add_argument(
        "--scheduler",
        action="append",
        type=_scheduler_arg,
        default=[],
        metavar="NAME=CONFIG",
        help="also run a kube-scheduler with this KubeSchedulerConfiguration (repeatable)",
    )
    up.add_argument(
        "--real-node",
        action="store_true",
        help="also run a real kubelet node (containerd, kube-proxy, CoreDNS; needs root)",
    )
    up.add_argument(
        "--image",
        action="append",
        type=Path,
        default=[],
        metavar="OCI_ARCHIVE",
        help="with --real-node: import this image archive into its containerd (repeatable); "
        "the archive of `edge-allocator dev image` is imported when it exists",
    )
    sub.add_parser("down", help="stop the cluster (and its real node) and remove its state")
    sub.add_parser("status", help="print the cluster's state as JSON")
    build = sub.add_parser("build", help="build (or reuse) the cached Kubernetes binaries")
    build.add_argument(
        "--real-node",
        action="store_true",
        help="also the real node's kubelet, kube-proxy, pause and CoreDNS",
    )
    image = sub.add_parser(
        "image", help="build the product image from the Dockerfile with buildah (no Docker)"
    )
    image.add_argument("--tag", default="dev", help="tag of localhost/edge-allocator (default dev)")
    image.add_argument(
        "--rebuild-base", action="store_true", help="debootstrap the base image again"
    )


def run(args: argparse.Namespace) -> int:
    try:
        if args.dev_command == "image":
            built = ImageBuilder(tag=args.tag).build(rebuild_base=args.rebuild_base)
            print(json.dumps({
                "image": built.name, "id": built.image_id, "size_bytes": built.size_bytes,
                "archive": str(built.archive), "seconds": round(built.seconds),
            }, indent=2))  # fmt: skip
            return 0
        if args.dev_command == "build":
            for name, path in ensure_binaries(node=args.real_node).items():
                print(f"{name}\t{path.resolve()}")
            return 0
        if args.dev_command == "up":
            sites = tuple(s.strip() for s in args.sites.split(",") if s.strip())
            cluster = DevCluster(
                fleet=FleetSpec(nodes=args.nodes, sites=sites),
                api_port=args.port,
                real_node=args.real_node,
            )
            images = list(args.image)
            if args.real_node:
                images += [p for p in (ImageBuilder().archive,) if p.exists()]
            cluster.up(scheduler_configs=args.scheduler, images=images)
            return 0
        cluster = DevCluster()
        if args.dev_command == "down":
            cluster.down()
            return 0
        status = cluster.status()
        print(json.dumps(status, indent=2))
        return 0 if status["running"] else 1
    except (
        BuildError,
        DevClusterError,
        ImageError,
        PrerequisiteError,
        RealNodeError,
        ValueError,
    ) as e:
        print(f"edge-allocator dev {args.dev_command}: {e}")
        return 2
