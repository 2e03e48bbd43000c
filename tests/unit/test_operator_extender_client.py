"""The operator's read of the extender's decisions API, over real HTTP on localhost."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from edge_allocator.cluster.annotations import CandidateScore, DecisionRecord
from edge_allocator.operator.extender_client import ExtenderDecisions

RECORD = DecisionRecord(
    policy="gnn",
    model_version="1.0.0",
    chosen="n1",
    score=10,
    rank=1,
    latency_ms=4.0,
    candidates=(CandidateScore("n1", 10, 2.5), CandidateScore("n2", 6, 1.0)),
    candidate_count=2,
)


@pytest.fixture()
async def extender() -> AsyncIterator[str]:
    async def decision(request: web.Request) -> web.Response:
        ns, pod = request.match_info["ns"], request.match_info["pod"]
        if (ns, pod) == ("demo", "t-1"):
            return web.Response(text=RECORD.to_json(), content_type="application/json")
        if pod == "broken":
            return web.Response(text="{nope", content_type="application/json")
        if pod == "boom":
            return web.Response(status=500)
        return web.json_response({"detail": "no record"}, status=404)

    app = web.Application()
    app.router.add_get("/v1/decisions/{ns}/{pod}", decision)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/"
    await runner.cleanup()


async def test_record_is_fetched_and_parsed(extender: str) -> None:
    client = ExtenderDecisions(extender, timeout_s=2)
    try:
        assert await client.fetch("demo", "t-1") == (RECORD, None)
        record, note = await client.fetch("demo", "other")
        assert record is None and note == "the extender holds no record for this pod"
        record, note = await client.fetch("demo", "broken")
        assert record is None and note is not None and "could not be parsed" in note
        record, note = await client.fetch("demo", "boom")
        assert record is None and note == "extender answered HTTP 500"
    finally:
        await client.close()


async def test_unreachable_extender_is_a_note_not_an_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    client = ExtenderDecisions(f"http://127.0.0.1:{port}", timeout_s=0.5)
    try:
        record, note = await client.fetch("demo", "t-1")
        assert record is None and note is not None and note.startswith("extender unreachable")
    finally:
        await client.close()
