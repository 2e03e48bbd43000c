"""A lean ASGI path for the scheduler verbs kube-scheduler calls for every pod.

FastAPI's routing, dependency solving, request object and exception middleware cost the event
loop more per request than the verbs' own parsing; on the scheduler's serial cycle every
millisecond the loop spends there is latency per pod, and a burst of binds queues the next
``/prioritize`` behind them. This middleware, in front of FastAPI's whole stack (behind the
request guard only), answers ``POST /prioritize`` and ``POST /bind`` itself: it reads the
body, validates it with the same pydantic model the route declares, and awaits the same
handler coroutine the route would. Anything it does not handle in full, a body that does not
validate or a request without the client certificate a configured CA asks for, it hands to
the app unchanged (the body replayed), so error answers are the app's own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Handler = Callable[[Any], Awaitable[Response]]
"""The route's coroutine: the validated body in, the answer out."""

ErrorAnswer = Callable[[Scope, Exception], Awaitable[Response]]
"""The app's answer to an exception a handler raised (its registered exception handlers)."""


class VerbFastPath:
    """Serve ``routes`` (path -> (body model, handler)) for POST; pass the rest to ``app``.

    ``admitted(scope)``: whether the request may be served here (False: the app decides, e.g.
    with a 403). ``on_error`` turns a handler's exception into the app's error answer.
    """

    def __init__(
        self,
        app: ASGIApp,
        routes: dict[str, tuple[type[BaseModel], Handler]],
        admitted: Callable[[Scope], bool],
        on_error: ErrorAnswer,
    ) -> None:
        self.app = app
        self.routes = routes
        self.admitted = admitted
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST" or not self.admitted(scope):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:  # the client went away (or the body guard answered 413)
            return
        model, handler = route
        try:
            args = model.model_validate_json(body)
        except ValidationError:  # the app's validation answers with its own message
            await self.app(scope, _replay(body, receive), send)
            return
        try:
            response = await handler(args)
        except Exception as exc:
            response = await self.on_error(scope, exc)
        await response(scope, receive, send)


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None when the client disconnected first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives ``body`` once, then what the connection gives (a disconnect)."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
