"""The operator's read of the extender's decisions API, against the real extender app over HTTP
on localhost (the response shape and the admin token are the extender's own)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_extender_helpers import fleet, pod, serving

from edge_allocator.cluster.annotations import CandidateScore, DecisionRecord
from edge_allocator.extender.app import create_app
from edge_allocator.extender.models import ModelManager
from edge_allocator.extender.service import ExtenderService, StaticSource
from edge_allocator.extender.settings import Settings
from edge_allocator.operator.extender_client import ExtenderDecisions

TOKEN = "s3cret-admin-token"
RECORD = DecisionRecord(
    policy="gnn",
    model_version="2.1.0",
    chosen="node-0001",
    score=10,
    rank=1,
    latency_ms=4.0,
    candidates=(CandidateScore("node-0001", 10, 2.5), CandidateScore("node-0002", 6, 1.0)),
    candidate_count=2,
)


def _serve(admin_token: str | None) -> Iterator[str]:
    service = ExtenderService(StaticSource(fleet()), ModelManager("est-completion"))

    def annotation(ns: str, name: str) -> tuple[str, str] | None:
        if (ns, name) == ("demo", "t-1"):
            return "uid-1", RECORD.to_json()
        if name == "broken":
            return "uid-2", "{nope"
        return None

    app = create_app(service, Settings(admin_token=admin_token), read_annotation=annotation)
    with serving(app) as url:
        yield url + "/"


@pytest.fixture(scope="module")
def extender() -> Iterator[str]:
    yield from _serve(None)


@pytest.fixture(scope="module")
def guarded_extender() -> Iterator[str]:
    yield from _serve(TOKEN)


async def test_record_is_fetched_and_parsed(extender: str) -> None:
    client = ExtenderDecisions(extender, timeout_s=5)
    try:
        assert await client.fetch("demo", "t-1") == (RECORD, None)
        assert await client.fetch("demo", "t-1", "uid-1") == (RECORD, None)
        record, note = await client.fetch("demo", "t-1", "uid-of-a-newer-pod")
        assert (
            record is None
            and note == "the extender's record is for an earlier pod of the same name"
        )
        record, note = await client.fetch("demo", "other")
        assert record is None and note == "the extender holds no record for this pod"
        record, note = await client.fetch("demo", "broken")  # the extender answers 404
        assert record is None and note == "the extender holds no record for this pod"
    finally:
        await client.close()


async def test_a_decision_the_extender_made_itself_comes_from_its_memory(extender: str) -> None:
    import httpx

    names = [f"node-{i:04d}" for i in range(4)]
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{extender}prioritize", json={"Pod": pod(), "NodeNames": names})
        assert r.status_code == 200
    client = ExtenderDecisions(extender, timeout_s=5)
    try:
        meta = pod()["metadata"]
        record, note = await client.fetch(meta["namespace"], meta["name"])
        assert note is None and record is not None
        assert record.policy == "est-completion" and record.chosen in names
    finally:
        await client.close()


async def test_admin_token_is_read_from_the_file(guarded_extender: str, tmp_path: Path) -> None:
    bare = ExtenderDecisions(guarded_extender, timeout_s=5)
    token_file = tmp_path / "token"
    token_file.write_text("wrong\n")
    with_token = ExtenderDecisions(guarded_extender, timeout_s=5, token_file=str(token_file))
    missing = ExtenderDecisions(guarded_extender, timeout_s=5, token_file=str(tmp_path / "no"))
    try:
        record, note = await bare.fetch("demo", "t-1")
        assert record is None and note is not None and "HTTP 401" in note
        assert "--extender-token-file" in note
        record, note = await with_token.fetch("demo", "t-1")
        assert record is None and note is not None and "HTTP 401" in note
        token_file.write_text(TOKEN + "\n")  # rotated: read again on the next request
        assert await with_token.fetch("demo", "t-1") == (RECORD, None)
        record, note = await missing.fetch("demo", "t-1")
        assert record is None and note is not None and "cannot read the extender token file" in note
    finally:
        for c in (bare, with_token, missing):
            await c.close()


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
