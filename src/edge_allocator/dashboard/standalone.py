"""The dashboard as its own process, for an extender build that does not mount ``/ui``.

It keeps its own watch cache (the extender's reflectors, so it sees the cluster exactly as the
policy does) and asks the extender's admin API which model is active. ``make demo`` starts it
only when the extender does not answer ``/ui/``.

    python -m edge_allocator.dashboard.standalone --kubeconfig KUBECONFIG \\
        --extender http://127.0.0.1:8888 --port 8899
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from edge_allocator.dashboard.model_card import ModelSummary, active_model_summary
from edge_allocator.dashboard.router import create_router
from edge_allocator.dashboard.view import DashboardSource
from edge_allocator.extender.cache import WatchCache
from edge_allocator.extender.kubeapi import KubeApi, load_connection
from edge_allocator.extender.live import LiveCluster
from edge_allocator.policy.model_file import ModelLoadError
from edge_allocator.policy.registry import UnknownPolicyError, get_policy

log = logging.getLogger("edge_allocator.dashboard")


def extender_model(extender: str, token: str | None) -> ModelSummary | None:
    """The extender's active model (GET /v1/models), summarised with its model card."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = httpx.get(f"{extender.rstrip('/')}/v1/models", headers=headers, timeout=2.0)
    resp.raise_for_status()
    active: dict[str, Any] = resp.json()["active"]
    try:
        policy = get_policy(str(active["name"]))
    except (UnknownPolicyError, ModelLoadError):  # known to the extender, not loadable here
        return ModelSummary(str(active["name"]), str(active["policy"]), str(active["version"]))
    return active_model_summary(str(active["name"]), policy)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", default=None)
    parser.add_argument("--extender", default="http://127.0.0.1:8888", help="extender base URL")
    parser.add_argument("--admin-token", default=None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8899)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    api = KubeApi(load_connection(args.kubeconfig))
    cache = WatchCache()
    live = LiveCluster(api, cache)
    source = DashboardSource(
        snapshot=cache.current,
        api_get=lambda path: api.get(path),
        model=lambda: extender_model(args.extender, args.admin_token),
    )
    app = FastAPI(title="Edge Allocator dashboard", docs_url=None, redoc_url=None)
    app.include_router(create_router(source), prefix="/ui")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(url="/ui/")

    live.start()
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        live.stop()
        api.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
