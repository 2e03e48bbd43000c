"""HTTP for the dashboard: the page and its assets (shipped in the package) and one JSON route.

Mounted by the extender under ``/ui``; everything is relative to that prefix, so it works
behind ``kubectl port-forward`` or any path prefix. Reading the state may call the API server
(one list of EdgeTasks), so it runs in a worker thread and never on the scheduling path.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from edge_allocator.dashboard.view import DashboardSource, collect_state

_ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
# Everything the page loads comes from this origin: no CDN, no inline script.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def _asset(name: str) -> str:
    return resources.files("edge_allocator.dashboard").joinpath("static", name).read_text()


def create_router(source: DashboardSource) -> APIRouter:
    """Routes ``/``, ``/static/{name}`` and ``/api/state``; include it with ``prefix="/ui"``."""
    router = APIRouter(tags=["dashboard"])
    headers = {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff"}

    @router.get("", include_in_schema=False)
    async def no_slash(request: Request) -> Response:
        return RedirectResponse(url=request.url.path + "/", status_code=307)

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> Response:
        return HTMLResponse(_asset("index.html"), headers=headers)

    @router.get("/static/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        media = _ASSETS.get(name)
        if media is None:
            raise HTTPException(status_code=404, detail=f"no asset {name!r}")
        return Response(_asset(name), media_type=media, headers=headers)

    @router.get("/api/state", summary="What the dashboard draws (sites, nodes, placements, model)")
    async def state() -> Any:
        body = await run_in_threadpool(collect_state, source)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    return router
