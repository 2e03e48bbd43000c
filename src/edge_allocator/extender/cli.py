"""``edge-allocator extender``: run the scheduler-extender HTTP service (one uvicorn worker).

Scale out with replicas, not workers: each replica keeps its own watch cache and records
decisions on the pods, so any replica (and the operator) can answer for any pod.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from edge_allocator.extender.settings import Settings

log = logging.getLogger("edge_allocator.extender")

TOKEN_ENV = "EDGE_ALLOCATOR_ADMIN_TOKEN"
SHADOW_ENV = "EDGE_ALLOCATOR_SHADOW_POLICY"


def configure(parser: argparse.ArgumentParser) -> None:
    d = Settings()
    parser.add_argument("--host", default=d.host, help="listen address (default %(default)s)")
    parser.add_argument(
        "--port", type=int, default=d.port, help="listen port (default %(default)s)"
    )
    parser.add_argument(
        "--policy",
        default=d.policy,
        help="initial policy: a registry name (gnn, est-completion, ...) or 'auto' "
        "(the shipped GNN when there is one, else est-completion)",
    )
    parser.add_argument(
        "--shadow-policy",
        help=f"policy to shadow from the start (or ${SHADOW_ENV}): it scores every decision "
        "off the request path, for comparison; the names --policy takes (PUT /v1/shadow "
        "changes it later)",
    )
    parser.add_argument(
        "--kubeconfig",
        help="kubeconfig path (default $KUBECONFIG, ~/.kube/config, then in-cluster)",
    )
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", help="private key of --tls-cert (PEM)")
    parser.add_argument(
        "--client-ca", help="require client certificates from this CA on /filter and /prioritize"
    )
    parser.add_argument(
        "--admin-token-file", help=f"bearer token for /v1/* (or ${TOKEN_ENV}); unset = open"
    )
    parser.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes)
    parser.add_argument("--admin-rate", type=float, default=d.admin_rate_per_s, help="admin req/s")
    parser.add_argument("--admin-burst", type=int, default=d.admin_burst)
    parser.add_argument("--decision-capacity", type=int, default=d.decision_capacity)
    parser.add_argument("--metrics-interval", type=float, default=d.metrics_interval_s)
    parser.add_argument(
        "--bind-grace",
        type=float,
        default=d.bind_grace_s,
        help="seconds a decision waits for the /bind verb to carry it before it is PATCHed onto "
        "the pod (default %(default)s); 0 when the scheduler profile has no bindVerb",
    )
    parser.add_argument(
        "--inline-candidates",
        type=int,
        default=d.inline_candidates,
        help="score /prioritize on the event loop when it has at most this many candidates and "
        "its snapshot is prepared (bounded work, no thread hand-off); 0: always on the verb "
        "worker (default %(default)s)",
    )
    parser.add_argument("--log-json", action="store_true", help="JSON log lines")
    parser.add_argument("--log-level", default="INFO")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "ts": self.formatTime(record),
                "level": record.levelname,
                "logger": record.name,
                "msg": record.getMessage(),
            }
        )


def _setup_logging(level: str, as_json: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per API call is noise


def _settings(args: argparse.Namespace) -> Settings:
    token = os.environ.get(TOKEN_ENV) or None
    if args.admin_token_file:
        with open(args.admin_token_file) as f:
            token = f.read().strip() or None
    return Settings(
        host=args.host,
        port=args.port,
        policy=args.policy,
        shadow_policy=args.shadow_policy or os.environ.get(SHADOW_ENV) or None,
        kubeconfig=args.kubeconfig,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        client_ca=args.client_ca,
        admin_token=token,
        max_body_bytes=args.max_body_bytes,
        admin_rate_per_s=args.admin_rate,
        admin_burst=args.admin_burst,
        inline_candidates=args.inline_candidates,
        decision_capacity=args.decision_capacity,
        metrics_interval_s=args.metrics_interval,
        bind_grace_s=args.bind_grace,
        log_json=args.log_json,
    )


def check_shadow_policy(name: str, option: str = "--shadow-policy") -> None:
    """Load and validate the shadow policy as ``PUT /v1/shadow`` does (``get_policy`` and a
    probe scoring); a ValueError naming ``option`` when it is unknown or refused, so a bad name
    stops start-up at once, before the Kubernetes connection."""
    from edge_allocator.extender.models import ModelValidationError, load_validated
    from edge_allocator.policy.model_file import ModelLoadError
    from edge_allocator.policy.registry import UnknownPolicyError

    try:
        load_validated(name, None)
    except UnknownPolicyError as exc:
        raise ValueError(f"{option} {name!r}: {exc}") from exc
    except (ModelLoadError, ModelValidationError) as exc:
        raise ValueError(f"{option} {name!r} refused: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    _setup_logging(args.log_level, args.log_json)
    try:
        settings = _settings(args)
        if settings.shadow_policy:
            option = "--shadow-policy" if args.shadow_policy else f"${SHADOW_ENV}"
            check_shadow_policy(settings.shadow_policy, option)
    except (OSError, ValueError) as exc:
        print(f"edge-allocator extender: {exc}", file=sys.stderr)
        return 2
    from edge_allocator.extender.server import serve  # heavy imports only when running

    return serve(settings)
