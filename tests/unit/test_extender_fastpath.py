"""The verbs' fast path: serves what it can in full, hands everything else to the app as sent."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import BaseModel
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from edge_allocator.extender.fastpath import VerbFastPath


class Body(BaseModel):
    name: str


def _scope(path: str, method: str = "POST") -> Scope:
    return {"type": "http", "path": path, "method": method, "headers": []}


def _call(fast: VerbFastPath, scope: Scope, chunks: list[bytes]) -> tuple[list[Message], None]:
    queue = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(fast(scope, receive, send))
    return sent, None


def _fast(admit: bool = True) -> tuple[VerbFastPath, list[Any], list[bytes]]:
    handled: list[Any] = []
    passed: list[bytes] = []

    async def handler(args: Body) -> Response:
        handled.append(args)
        if args.name == "boom":
            raise RuntimeError("scoring failed")
        return Response(json.dumps({"hello": args.name}), media_type="application/json")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        passed.append(message.get("body", b""))
        await Response("from the app", status_code=422)(scope, receive, send)

    async def on_error(scope: Scope, exc: Exception) -> Response:
        return Response(f"app error: {exc}", status_code=500)

    fast = VerbFastPath(app, {"/prioritize": (Body, handler)}, lambda s: admit, on_error)
    return fast, handled, passed


def test_a_valid_body_is_served_without_the_app_even_in_chunks() -> None:
    fast, handled, passed = _fast()
    sent, _ = _call(fast, _scope("/prioritize"), [b'{"na', b'me": "n1"}'])
    assert handled == [Body(name="n1")] and passed == []
    assert sent[0]["status"] == 200 and json.loads(sent[1]["body"]) == {"hello": "n1"}


def test_an_invalid_body_reaches_the_app_as_sent() -> None:
    fast, handled, passed = _fast()
    sent, _ = _call(fast, _scope("/prioritize"), [b'{"name": 3', b"}"])
    assert handled == [] and passed == [b'{"name": 3}']
    assert sent[0]["status"] == 422


def test_other_paths_methods_and_unadmitted_clients_go_to_the_app() -> None:
    for scope, admit in (
        (_scope("/healthz", "GET"), True),
        (_scope("/prioritize", "GET"), True),
        (_scope("/prioritize"), False),
    ):
        fast, handled, passed = _fast(admit)
        sent, _ = _call(fast, scope, [b'{"name": "n1"}'])
        assert handled == [] and passed == [b'{"name": "n1"}'] and sent[0]["status"] == 422


def test_a_handler_error_is_answered_by_the_apps_error_handler() -> None:
    fast, handled, _ = _fast()
    sent, _ = _call(fast, _scope("/prioritize"), [b'{"name": "boom"}'])
    assert handled == [Body(name="boom")]
    assert sent[0]["status"] == 500 and sent[1]["body"] == b"app error: scoring failed"


def test_a_client_gone_before_its_body_gets_no_answer() -> None:
    fast, handled, passed = _fast()

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(fast(_scope("/prioritize"), receive, send))
    assert sent == [] and handled == [] and passed == []
