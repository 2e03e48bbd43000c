"""``edge-allocator operator``: run the EdgeTask operator.

Examples::

    edge-allocator operator --kubeconfig .cache/devcluster/kubeconfig
    edge-allocator operator --scheduler-name default-scheduler --namespace demo
    edge-allocator operator --extender-url http://edge-allocator-extender:8000 --log-format json
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket

from edge_allocator.cluster.annotations import SCHEDULER_NAME
from edge_allocator.operator.config import LeaderConfig, OperatorConfig
from edge_allocator.operator.replacement import ReplacementConfig


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add = parser.add_argument
    add(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG"),
        help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster)",
    )
    add(
        "--namespace",
        "-n",
        action="append",
        default=[],
        dest="namespaces",
        help="watch EdgeTasks in this namespace (repeatable; default: all namespaces)",
    )
    add(
        "--scheduler-name",
        default=SCHEDULER_NAME,
        help=f"schedulerName for task pods (default: {SCHEDULER_NAME})",
    )
    add(
        "--extender-url",
        default=None,
        help="extender base URL for decision records missing from the pod annotation",
    )
    add("--extender-timeout", type=float, default=1.0, metavar="SECONDS")
    add(
        "--extender-token-file",
        default=None,
        metavar="PATH",
        help="file with the extender's admin bearer token (a mounted Secret; read per request)",
    )
    add(
        "--node-lost-grace",
        type=float,
        default=40.0,
        metavar="SECONDS",
        help="how long a node may be NotReady before its tasks are rescheduled (default: 40)",
    )
    add(
        "--backoff-base",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="delay before the 2nd attempt; doubles per attempt (default: 1)",
    )
    add("--backoff-max", type=float, default=60.0, metavar="SECONDS")
    add("--metrics-bind", default="0.0.0.0", help="address for /metrics and /healthz")
    add("--metrics-port", type=int, default=8081, help="port for /metrics and /healthz (0: any)")
    add("--log-format", choices=("text", "json"), default="text")
    add("--verbose", "-v", action="store_true")
    moves = parser.add_argument_group(
        "re-placement (moving running tasks; defaults in the README's re-placement section)"
    )
    d = ReplacementConfig()
    moves.add_argument(
        "--replacement",
        choices=("on", "dry-run", "off"),
        default=d.mode,
        help="on: move tasks; dry-run: only report what would move and why; off: neither",
    )
    for flag, attr, kind, what in (
        ("--replacement-interval", "interval_s", float, "seconds between re-placement sweeps"),
        ("--replacement-margin", "margin", float, "least predicted gain (fraction) to move"),
        ("--replacement-min-gain", "min_gain_s", float, "least predicted gain in seconds"),
        ("--replacement-cooldown", "cooldown_s", float, "seconds between moves of one task"),
        ("--max-moves-in-flight", "max_in_flight", int, "moves at once, cluster-wide"),
        ("--max-moves-per-node", "max_in_flight_per_node", int, "moves away from one node"),
        ("--overload-cpu", "overload_cpu", float, "CPU fraction of allocatable: overloaded"),
        ("--overload-samples", "overload_samples", int, "consecutive samples over it"),
        ("--node-metrics-interval", "metrics_interval_s", float, "seconds between reads"),
        ("--node-metrics-max-age", "metrics_max_age_s", float, "older samples are ignored"),
        ("--move-timeout", "move_timeout_s", float, "seconds for the new pod to run"),
    ):
        moves.add_argument(
            flag, type=kind, default=getattr(d, attr), help=f"{what} (default %(default)s)"
        )
    lead = parser.add_argument_group("high availability (Lease-based leader election)")
    lead.add_argument(
        "--no-leader-election",
        dest="leader_election",
        action="store_false",
        help="act without holding the lease (only ever run one replica like this)",
    )
    lead.add_argument(
        "--lease-namespace",
        default=os.environ.get("POD_NAMESPACE", "default"),
        help="namespace of the Lease (default: $POD_NAMESPACE or 'default')",
    )
    lead.add_argument("--lease-name", default="edge-allocator-operator")
    lead.add_argument(
        "--identity",
        default=os.environ.get("POD_NAME", ""),
        help="this replica's name in the Lease (default: $POD_NAME or host-pid)",
    )
    lead.add_argument("--lease-duration", type=float, default=15.0, metavar="SECONDS")
    lead.add_argument("--renew-deadline", type=float, default=10.0, metavar="SECONDS")
    lead.add_argument("--retry-period", type=float, default=2.0, metavar="SECONDS")


def run(args: argparse.Namespace) -> int:
    import kopf  # imported here so that `edge-allocator --help` stays fast

    from edge_allocator.operator.runner import run_operator

    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL,
    )
    if not args.verbose:  # kopf logs every handler call at INFO: thousands of lines per minute
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig  # kopf's own login reads it
    try:
        cfg = OperatorConfig(
            scheduler_name=args.scheduler_name,
            extender_url=args.extender_url,
            extender_timeout_s=args.extender_timeout,
            extender_token_file=args.extender_token_file,
            node_lost_grace_s=args.node_lost_grace,
            backoff_base_s=args.backoff_base,
            backoff_max_s=args.backoff_max,
            namespaces=tuple(args.namespaces),
            replacement=ReplacementConfig(
                mode=args.replacement,
                interval_s=args.replacement_interval,
                margin=args.replacement_margin,
                min_gain_s=args.replacement_min_gain,
                cooldown_s=args.replacement_cooldown,
                max_in_flight=args.max_moves_in_flight,
                max_in_flight_per_node=args.max_moves_per_node,
                overload_cpu=args.overload_cpu,
                overload_samples=args.overload_samples,
                metrics_interval_s=args.node_metrics_interval,
                metrics_max_age_s=args.node_metrics_max_age,
                move_timeout_s=args.move_timeout,
            ),
        )
        leader = LeaderConfig(
            enabled=args.leader_election,
            namespace=args.lease_namespace,
            name=args.lease_name,
            identity=args.identity or f"{socket.gethostname()}-{os.getpid()}",
            lease_duration_s=args.lease_duration,
            renew_deadline_s=args.renew_deadline,
            retry_period_s=args.retry_period,
        )
    except ValueError as err:
        raise SystemExit(f"edge-allocator operator: {err}") from err
    return asyncio.run(
        run_operator(
            cfg,
            leader,
            kubeconfig=args.kubeconfig,
            metrics_host=args.metrics_bind,
            metrics_port=args.metrics_port,
        )
    )
