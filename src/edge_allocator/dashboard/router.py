"""HTTP for the dashboard: the page and its assets (shipped in the package) and one JSON route.

Mounted by the extender under ``/ui``; everything is relative to that prefix, so it works
behind ``kubectl port-forward`` or any path prefix. Reading the state may call the API server
(paged LISTs of EdgeTasks), so it runs in a worker thread and never on the scheduling path, and
one state serves every poll for a few seconds. When the extender has an admin token, the
state (cluster, placements, model) needs it as a bearer token like the admin API; the page and
its assets hold no data and stay open, and the page asks for the token.
"""

from __future__ import annotations

import hmac
from importlib import resources
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from edge_allocator.dashboard.view import DashboardSource, StateCache

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


def _bearer_matches(header: str | None, token: str) -> bool:
    if not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), token.encode())


def create_router(source: DashboardSource, *, admin_token: str | None = None) -> APIRouter:
    """Routes ``/``, ``/static/{name}`` and ``/api/state``; include it with ``prefix="/ui"``.

    ``admin_token``: when set, ``/api/state`` answers 401 without ``Authorization: Bearer``.
    """
    router = APIRouter(tags=["dashboard"])
    cache = StateCache(source)
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
    async def state(request: Request) -> Any:
        if admin_token and not _bearer_matches(request.headers.get("authorization"), admin_token):
            raise HTTPException(
                status_code=401,
                detail="the dashboard state needs 'Authorization: Bearer <admin token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        body = await run_in_threadpool(cache.get)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    return router
