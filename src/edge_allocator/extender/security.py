"""Request hygiene shared by every route: request ids, a body-size limit, admin auth and rate.

The middleware is plain ASGI (no per-request task or buffering), because it sits in front of
the scheduler verbs whose latency budget is a few milliseconds.
"""

from __future__ import annotations

import hmac
import json
import re
import threading
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "x-request-id"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def error_body(status: int, message: str, request_id: str) -> bytes:
    return json.dumps(
        {"error": {"status": status, "message": message, "requestId": request_id}}
    ).encode()


def request_id_of(scope: Scope) -> str:
    return str(scope.get("state", {}).get("request_id", "-"))


class RequestGuard:
    """Assigns a request id (or keeps a sane incoming one) and enforces ``max_body_bytes``.

    An oversized body is answered 413 with a JSON error. A client that writes its whole body
    before reading the answer (Python's http.client, many proxies) would see a reset if the
    connection closed with the body unread, so a body up to ``drain_bytes`` is read and thrown
    away (the connection is kept; the server discards what is left of a declared length);
    only a body beyond that gets ``Connection: close``.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, drain_bytes: int | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.drain_bytes = max(drain_bytes if drain_bytes is not None else 0, max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        length = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                text = value.decode("latin-1")
                rid = text if _SAFE_ID.match(text) else None
            elif name == b"content-length":
                length = value
        rid = rid or uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = rid
        rid_header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), rid_header]
            await send(message)

        limit = self.max_body_bytes
        too_big_text = f"request body exceeds {limit} bytes"
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = 0
            if declared > limit:
                # within the drain allowance the server reads and drops the rest of the body
                # after the answer and keeps the connection; beyond it, close
                close = declared > self.drain_bytes
                await self._reject(send_with_id, 413, too_big_text, rid, close=close)
                return
            await self.app(scope, receive, send_with_id)
            return

        seen = 0
        rejected = False

        async def counting_receive() -> Message:
            nonlocal seen, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:  # drain what the allowance covers, answer; the app sees a
                    rejected = True  # disconnected client
                    more = message.get("more_body", False)
                    while more and seen <= self.drain_bytes:
                        message = await receive()
                        if message["type"] != "http.request":
                            break
                        seen += len(message.get("body", b""))
                        more = message.get("more_body", False)
                    await self._reject(send_with_id, 413, too_big_text, rid, close=more)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not rejected:
                await send_with_id(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not rejected:
                raise

    @staticmethod
    async def _reject(send: Send, status: int, message: str, rid: str, *, close: bool) -> None:
        body = error_body(status, message, rid)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class TokenBucket:
    """A global token bucket: ``rate`` requests per second with bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int, clock: Any = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._tokens = float(burst)
        self._at = clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        """0 when allowed, else the seconds to wait before a token is free."""
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate if self.rate > 0 else 60.0


def token_matches(header: str | None, token: str) -> bool:
    if not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), token.encode())
