"""The HTTP contract: verbs in both nodeCacheCapable modes, admin API, security, errors."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from test_extender_helpers import fleet, make_app, pod

from edge_allocator.cluster import annotations as ann
from edge_allocator.cluster.annotations import DecisionRecord
from edge_allocator.extender.app import create_app
from edge_allocator.extender.models import ModelManager
from edge_allocator.extender.podtask import task_from_pod
from edge_allocator.extender.scoring import rank
from edge_allocator.extender.service import ExtenderService, StaticSource
from edge_allocator.extender.settings import Settings
from edge_allocator.extender.wire import ExtenderArgs
from edge_allocator.policy.registry import get_policy

NAMES = [f"node-{i:04d}" for i in range(6)]


def client(**kw: Any) -> tuple[TestClient, ExtenderService, StaticSource]:
    app, service, source = make_app(**kw)
    return TestClient(app), service, source


def test_prioritize_top_node_is_the_policy_best() -> None:
    c, service, source = client()
    body = {"Pod": pod(), "NodeNames": NAMES}
    r = c.post("/prioritize", json=body)
    assert r.status_code == 200, r.text
    assert float(r.headers["Server-Timing"].split("prioritize;dur=")[1]) > 0
    out = r.json()
    assert [h["Host"] for h in out] == NAMES
    assert all(set(h) == {"Host", "Score"} for h in out)
    snap = fleet()
    task = task_from_pod(pod()["metadata"]["annotations"], (250, 128), snap)
    raw = get_policy("est-completion").score(snap, task, NAMES)
    best = rank(NAMES, raw)[0]
    scores = {h["Host"]: h["Score"] for h in out}
    assert scores[NAMES[best]] == 10
    assert sorted(scores.values()).count(10) == 1
    # the decision is kept and the pod is assumed on the chosen node
    assert service.wait_recorded("ns", "p")  # the record follows the answer
    rec = service.log.get(("ns", "p"))
    assert rec is not None and rec[1].chosen == NAMES[best]
    assert rec[1].candidate_count == 6 and len(rec[1].candidates) == ann.TOP_CANDIDATES_KEPT
    assert source.assumed == [("uid-1", NAMES[best], 250, 128)]


def test_filter_node_names_mode_and_reason() -> None:
    c, _, _ = client()
    r = c.post("/filter", json={"Pod": pod(budget=5), "NodeNames": NAMES})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["NodeNames"] == ["node-0000", "node-0003"]  # only site-0 is within 5 ms
    assert out["FailedAndUnresolvableNodes"]["node-0001"] == "10 ms from site-0 exceeds budget 5 ms"
    assert out["FailedNodes"] == {} and out["Error"] == ""


def test_filter_nodes_mode_echoes_node_objects() -> None:
    c, _, _ = client()
    items = [{"metadata": {"name": n, "labels": {"x": n}}, "status": {}} for n in NAMES]
    r = c.post("/filter", json={"Pod": pod(budget=5), "Nodes": {"items": items}})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["NodeNames"] is None
    assert [n["metadata"] for n in out["Nodes"]["items"]] == [
        items[0]["metadata"],
        items[3]["metadata"],
    ]


def test_prioritize_nodes_mode() -> None:
    c, _, _ = client()
    items = [{"metadata": {"name": n}} for n in NAMES]
    r = c.post("/prioritize", json={"Pod": pod(), "Nodes": {"items": items}})
    assert r.status_code == 200
    assert [h["Host"] for h in r.json()] == NAMES


def test_prioritize_scores_a_node_the_cache_does_not_know_zero() -> None:
    """A candidate missing from the snapshot (a node added since the last rebuild) gets 0 in
    its place; the known ones are scored as without it, the policy's best gets 10."""
    c, service, _ = client()
    names = [NAMES[0], "node-new", *NAMES[1:]]
    r = c.post("/prioritize", json={"Pod": pod(), "NodeNames": names})
    assert r.status_code == 200, r.text
    out = r.json()
    assert [h["Host"] for h in out] == names
    scores = {h["Host"]: h["Score"] for h in out}
    assert scores["node-new"] == 0
    _, known = service.prioritize_columns(
        ExtenderArgs.model_validate({"Pod": pod(), "NodeNames": NAMES})
    )
    assert [scores[n] for n in NAMES] == known and known.count(10) == 1


def test_non_edge_task_pod_gets_neutral_answer() -> None:
    c, service, _ = client(snapshot=None)
    service.source.snapshot = None  # type: ignore[attr-defined]
    plain = pod(site=None)
    r = c.post("/filter", json={"Pod": plain, "NodeNames": ["anything"]})
    assert r.status_code == 200 and r.json()["NodeNames"] == ["anything"]
    r = c.post("/prioritize", json={"Pod": plain, "NodeNames": ["a", "b"]})
    assert r.json() == [{"Host": "a", "Score": 0}, {"Host": "b", "Score": 0}]
    assert len(service.log) == 0


def test_not_synced_is_503_so_the_scheduler_ignores_us() -> None:
    c, service, _ = client()
    service.source.snapshot = None  # type: ignore[attr-defined]
    r = c.post("/filter", json={"Pod": pod(), "NodeNames": NAMES})
    assert r.status_code == 503
    assert "not synced" in r.json()["error"]["message"]
    assert c.get("/readyz").status_code == 503


def test_bad_annotation_fails_every_node_with_the_reason() -> None:
    c, _, _ = client()
    bad = pod(extra={ann.ANN_LATENCY_BUDGET_MS: "soon"})
    r = c.post("/filter", json={"Pod": bad, "NodeNames": NAMES[:2]})
    out = r.json()
    assert out["NodeNames"] == []
    reason = out["FailedAndUnresolvableNodes"]["node-0000"]
    assert "edge-allocator.io/latency-budget-ms" in reason and "'soon' is not a number" in reason


def test_single_feasible_node_records_a_decision_at_filter() -> None:
    c, service, _ = client()
    r = c.post("/filter", json={"Pod": pod(budget=5), "NodeNames": NAMES[:3]})
    assert r.json()["NodeNames"] == ["node-0000"]
    assert service.wait_recorded("ns", "p")  # the record follows the answer
    rec = service.log.get(("ns", "p"))
    assert rec is not None and rec[1].chosen == "node-0000" and rec[1].candidate_count == 1


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b'{"Pod": {"metadata": {"name": "x"}}, "NodeNames": ["a"', 400, "not valid JSON"),
        (b"[]", 422, "Input should be a valid dictionary"),
        (b'{"NodeNames": ["a"]}', 422, "Pod: Field required"),
        (b'{"Pod": {"metadata": {"name": "x"}}}', 422, "one of NodeNames"),
        (b'{"Pod": {"metadata": {}}, "NodeNames": []}', 422, "Pod.metadata.name: Field required"),
        (b'{"Pod": {"metadata": {"name": "x"}}, "NodeNames": [1]}', 422, "NodeNames.0"),
        (b"\xff\xfe", 400, "not valid JSON"),
    ],
)
def test_malformed_args_are_4xx_with_a_message(body: bytes, status: int, needle: str) -> None:
    c, _, _ = client()
    for verb in ("/filter", "/prioritize"):
        r = c.post(verb, content=body, headers={"content-type": "application/json"})
        assert r.status_code == status, r.text
        err = r.json()["error"]
        assert needle in err["message"]
        assert err["requestId"] == r.headers["x-request-id"]


def test_bad_quantity_in_pod_is_explained() -> None:
    c, _, _ = client()
    r = c.post("/filter", json={"Pod": pod(cpu="lots"), "NodeNames": NAMES[:1]})
    reason = r.json()["FailedAndUnresolvableNodes"]["node-0000"]
    assert "'lots' is not a quantity" in reason


def test_oversized_body_is_413() -> None:
    c, _, _ = client(max_body_bytes=2048)
    big = {"Pod": pod(), "NodeNames": [f"n{i}" for i in range(1000)]}
    r = c.post("/prioritize", json=big)
    assert r.status_code == 413
    assert "exceeds 2048 bytes" in r.json()["error"]["message"]

    def chunks() -> Any:  # no Content-Length: counted while streaming
        data = json.dumps(big).encode()
        for i in range(0, len(data), 1000):
            yield data[i : i + 1000]

    r = c.post("/prioritize", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_request_id_is_kept_when_sane() -> None:
    c, _, _ = client()
    r = c.get("/healthz", headers={"x-request-id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = c.get("/healthz", headers={"x-request-id": "bad id\n"})
    assert r.headers["x-request-id"] != "bad id\n" and len(r.headers["x-request-id"]) == 16


def test_admin_token_and_rate_limit() -> None:
    c, _, _ = client(admin_token="s3cret", admin_rate_per_s=0.01, admin_burst=2)
    assert c.get("/v1/models").status_code == 401
    assert c.get("/v1/models", headers={"Authorization": "Bearer nope"}).status_code == 401
    ok = {"Authorization": "Bearer s3cret"}
    assert c.get("/v1/models", headers=ok).status_code == 200
    assert c.get("/v1/models", headers=ok).status_code == 200
    r = c.get("/v1/models", headers=ok)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    # verbs and probes are not rate limited nor token protected
    for _ in range(5):
        assert c.post("/prioritize", json={"Pod": pod(), "NodeNames": NAMES}).status_code == 200
    assert c.get("/healthz").status_code == 200


def test_models_list_and_activate() -> None:
    c, service, _ = client()
    r = c.get("/v1/models")
    assert r.status_code == 200
    body = r.json()
    assert body["active"]["policy"] == "est-completion"
    assert "latency" in body["policies"]
    assert c.get("/v1/models/latency").json()["kind"] == "baseline"
    assert c.get("/v1/models/nope").status_code == 404

    r = c.post("/v1/models/latency/activate")
    assert r.status_code == 200 and r.json()["policy"] == "latency"
    assert service.models.active.policy.name == "latency"
    r = c.post("/prioritize", json={"Pod": pod(), "NodeNames": NAMES})
    assert service.wait_recorded("ns", "p")  # the record follows the answer
    rec = service.log.get(("ns", "p"))
    assert rec is not None and rec[1].policy == "latency"

    assert c.post("/v1/models/unknown-thing/activate").status_code == 404
    assert c.post("/v1/models/%2Fetc%2Fpasswd.pt/activate").status_code == 404
    assert service.models.active.policy.name == "latency"


def test_activate_bad_model_file_keeps_old(tmp_path: Any, monkeypatch: Any) -> None:
    (tmp_path / "broken.pt").write_bytes(b"not a torch file")
    (tmp_path / "SHIPPED").write_text("broken.pt")
    monkeypatch.setenv("EDGE_ALLOCATOR_MODELS_DIR", str(tmp_path))
    c, service, _ = client()
    r = c.post("/v1/models/gnn/activate")
    assert r.status_code == 422, r.text
    msg = r.json()["error"]["message"]
    assert "refused" in msg and "'est-completion' stays active" in msg
    assert service.models.active.policy.name == "est-completion"


class _NaNPolicy:
    name = "nan"
    version = "0"

    def score(self, snapshot: Any, task: Any, candidates: Any) -> list[float]:
        return [float("nan")] * len(candidates)


def test_validation_refuses_a_policy_with_non_finite_scores() -> None:
    from edge_allocator.extender.models import ModelValidationError, validate

    with pytest.raises(ModelValidationError, match="non-finite"):
        validate(_NaNPolicy(), fleet())


def test_what_if_score_and_batch() -> None:
    c, _, _ = client()
    task = {"cpuRequestM": 250, "memRequestMib": 128, "dataSourceSite": "site-0"}
    r = c.post("/v1/score", json={"task": dict(task, latencyBudgetMs=5)})
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out["filtered"]) == {"node-0001", "node-0002", "node-0004", "node-0005"}
    assert [x["rank"] for x in out["candidates"]] == [1, 2]
    assert out["chosen"] == out["candidates"][0]["node"] and out["candidates"][0]["score"] == 10
    r = c.post("/v1/score/batch", json={"requests": [{"task": task}, {"task": task}]})
    assert r.status_code == 200 and len(r.json()["results"]) == 2
    r = c.post("/v1/score", json={"task": dict(task, dataSourceSite="mars")})
    assert r.status_code == 422 and "unknown site 'mars'" in r.json()["error"]["message"]
    r = c.post("/v1/score", json={"task": dict(task, cpuRequestM=-1)})
    assert r.status_code == 422 and "task.cpuRequestM" in r.json()["error"]["message"]


def test_decisions_memory_then_annotation() -> None:
    snap = fleet()
    service = ExtenderService(StaticSource(snap), ModelManager("est-completion"))
    rec = DecisionRecord("x", "1", "node-0001", 10, 1, 2.5, (), 3, "t")
    reads: list[tuple[str, str]] = []

    def read(ns: str, name: str) -> tuple[str, str] | None:
        reads.append((ns, name))
        return ("u2", rec.to_json()) if name == "other" else None

    c = TestClient(create_app(service, Settings(), read_annotation=read))
    c.post("/prioritize", json={"Pod": pod(), "NodeNames": NAMES})
    r = c.get("/v1/decisions/ns/p")
    assert r.status_code == 200 and r.json()["source"] == "memory" and reads == []
    r = c.get("/v1/decisions/ns/other")
    assert r.json()["source"] == "annotation" and r.json()["decision"]["chosen"] == "node-0001"
    assert c.get("/v1/decisions/ns/none").status_code == 404


def test_metrics_and_probes() -> None:
    c, _, _ = client()
    c.post("/prioritize", json={"Pod": pod(), "NodeNames": NAMES})
    assert c.get("/healthz").json() == {"status": "ok"}
    assert c.get("/readyz").json()["ready"] is True
    text = c.get("/metrics").text
    assert 'edge_allocator_extender_request_seconds_count{verb="prioritize"} 1.0' in text
    assert "edge_allocator_inference_seconds_count 1.0" in text
    assert "edge_allocator_verb_queue_seconds_count 1.0" in text  # the one scoring call
    # where the CPU goes, per thread group: the scoring ran on the verb worker
    cpu = {
        line.split('thread="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("edge_allocator_thread_cpu_seconds_total{")
    }
    assert cpu["event-loop"] > 0 and cpu["extender-verb"] > 0
    assert c.get("/openapi.json").json()["paths"]["/filter"]["post"]


def test_a_bind_right_after_its_answer_waits_for_the_deferred_record() -> None:
    """The record is made on the verb worker after the answer is out; a bind that arrives
    before that (a slow record here) still carries it, and is not re-scored."""

    service = ExtenderService(StaticSource(fleet()), ModelManager("est-completion"))
    slow = threading.Event()
    real_record = service._record

    def slow_record(*args: Any) -> None:
        slow.set()
        time.sleep(0.3)
        real_record(*args)

    service._record = slow_record  # type: ignore[method-assign]
    bound: list[dict[str, str]] = []
    app = create_app(service, Settings(), binder=lambda *a: bound.append(a[-1]))
    c = TestClient(app)
    r = c.post("/prioritize", json={"Pod": pod(), "NodeNames": NAMES})
    top = max(r.json(), key=lambda h: h["Score"])["Host"]
    assert slow.wait(2) and service.record_pending("ns", "p")
    args = {"PodName": "p", "PodNamespace": "ns", "PodUID": "uid-1", "Node": top}
    assert c.post("/bind", json=args).json() == {"Error": ""}
    record = DecisionRecord.from_json(bound[0][ann.ANN_DECISION])
    assert record.chosen == top and record.candidate_count == len(NAMES)
    assert not service.record_pending("ns", "p")


def test_thread_groups_drop_pool_numbers() -> None:
    from edge_allocator.extender.metrics import thread_group

    assert thread_group("extender-verb_0") == thread_group("extender-verb_12") == "extender-verb"
    assert thread_group("binder_3") == "binder"
    assert thread_group("reflector-pods") == "reflector-pods"
    assert thread_group("AnyIO worker thread") == "AnyIO worker thread"
    assert thread_group("Thread-7 (run)") == "unnamed"


def test_bind_carries_the_decision_and_cancels_the_patch() -> None:
    from edge_allocator.extender.decisions import AnnotationWriter

    patched: list[tuple[str, str]] = []
    writer = AnnotationWriter(lambda ns, name, uid, text: patched.append((ns, name)))
    service = ExtenderService(
        StaticSource(fleet()), ModelManager("est-completion"), writer=writer, bind_grace_s=60
    )
    bound: list[tuple[str, str, str, str, dict[str, str]]] = []

    def binder(ns: str, name: str, uid: str, node: str, annotations: dict[str, str]) -> None:
        if name == "fails":
            raise RuntimeError("conflict")
        bound.append((ns, name, uid, node, annotations))

    c = TestClient(create_app(service, Settings(), binder=binder))
    c.post("/prioritize", json={"Pod": pod(), "NodeNames": NAMES})
    assert service.wait_recorded("ns", "p")  # the record follows the answer
    assert writer.pending() == 1  # held back for the bind verb
    args = {"PodName": "p", "PodNamespace": "ns", "PodUID": "uid-1", "Node": "node-0001"}
    r = c.post("/bind", json=args)
    assert r.status_code == 200 and r.json() == {"Error": ""}
    (ns, name, uid, node, annotations) = bound[0]
    assert (ns, name, uid, node) == ("ns", "p", "uid-1", "node-0001")
    record = DecisionRecord.from_json(annotations[ann.ANN_DECISION])
    assert record.chosen == service.log.get(("ns", "p"))[1].chosen  # type: ignore[index]
    assert writer.pending() == 0 and patched == []  # no separate PATCH
    # a pod never scored is bound without a decision
    r = c.post("/bind", json=dict(args, PodName="other", PodUID="u9"))
    assert r.json() == {"Error": ""} and bound[-1][4] == {}
    # a failed binding is reported (kube-scheduler falls back) and the record goes to the writer
    c.post("/prioritize", json={"Pod": pod("fails", uid="u2"), "NodeNames": NAMES})
    assert service.wait_recorded("ns", "fails")
    assert writer.take(("ns", "fails"), "u2") is not None  # pending; put it back as bind would
    service.writer.submit_text(("ns", "fails"), "u2", "{}", 60)  # type: ignore[union-attr]
    r = c.post("/bind", json=dict(args, PodName="fails", PodUID="u2"))
    assert "binding ns/fails to node-0001 failed: conflict" in r.json()["Error"]
    assert writer.flush() and patched == [("ns", "fails")]


def test_bind_without_binder_asks_the_scheduler_to_bind() -> None:
    c, _, _ = client()
    args = {"PodName": "p", "PodNamespace": "ns", "PodUID": "u", "Node": "n"}
    assert "not configured to bind" in c.post("/bind", json=args).json()["Error"]
    assert c.post("/bind", json={"PodName": "p"}).status_code == 422


def test_bind_without_a_prioritize_call_records_the_one_node() -> None:
    """kube-scheduler skips prioritize when one node is feasible: the bind verb decides then."""
    service = ExtenderService(StaticSource(fleet()), ModelManager("est-completion"))
    bound: list[tuple[str, str, dict[str, str]]] = []
    pods = {
        "single": pod("single", uid="u-single"),
        "plain": {"metadata": {"name": "plain", "namespace": "ns", "uid": "u-plain"}},
    }

    def read_pod(ns: str, name: str) -> dict[str, Any] | None:
        if name == "broken":
            raise RuntimeError("API server unreachable")
        return pods.get(name)

    def binder(ns: str, name: str, uid: str, node: str, annotations: dict[str, str]) -> None:
        bound.append((name, node, annotations))

    c = TestClient(create_app(service, Settings(), binder=binder, read_pod=read_pod))
    args = {"PodNamespace": "ns", "Node": "node-0003"}
    r = c.post("/bind", json=dict(args, PodName="single", PodUID="u-single"))
    assert r.json() == {"Error": ""}
    record = DecisionRecord.from_json(bound[-1][2][ann.ANN_DECISION])
    assert (record.chosen, record.candidate_count, record.policy) == (
        "node-0003",
        1,
        "est-completion",
    )
    hit = service.log.get(("ns", "single"))
    assert hit is not None and hit[0] == "u-single"
    # not an edge task, another pod under the same name, gone, or unreadable: bound, no record
    for name, uid in (("plain", "u-plain"), ("single", "u-other"), ("gone", "u"), ("broken", "u")):
        r = c.post("/bind", json=dict(args, PodName=name, PodUID=uid))
        assert r.json() == {"Error": ""} and bound[-1][:2] == (name, "node-0003")
        assert bound[-1][2] == {}, name


def test_prioritize_prepares_the_snapshot_the_next_pod_sees() -> None:
    """After answering, the worker embeds the snapshot holding the placement just made."""

    source = StaticSource(fleet(), apply_assumptions=True)
    service = ExtenderService(source, ModelManager("gnn"))
    policy = service.models.active.policy
    c = TestClient(create_app(service, Settings()))
    r = c.post("/prioritize", json={"Pod": pod(), "NodeNames": NAMES})
    assert r.status_code == 200, r.text
    after = source.current()
    assert after is not None and after.revision == fleet().revision + 1  # the placement
    key = (id(after.topology_cache), after.revision)
    deadline = time.monotonic() + 10
    while key not in policy._cache:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "the next snapshot was never prepared"
        time.sleep(0.01)


def test_host_priorities_are_the_json_of_the_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hand-written answer parses to exactly what json.dumps would say, for every score and
    for names that need escaping, also after the prefix cache is cleared at its bound."""
    from edge_allocator.extender import app as app_module

    monkeypatch.setattr(app_module._HostPrefixes, "LIMIT", 3)
    app_module._PREFIXES.clear()
    names = ["n-1", 'we"ird', "back\\slash", "ünï", "n-1", "tab\tname"]
    pairs = [(n, i % 11) for i, n in enumerate(names * 3)]
    body = app_module._host_priorities([h for h, _ in pairs], [s for _, s in pairs])
    assert json.loads(body) == [{"Host": h, "Score": s} for h, s in pairs]
    assert len(app_module._PREFIXES) <= 3
    assert app_module._host_priorities([], []) == b"[]"
    with pytest.raises(ValueError):  # a score per host, never fewer
        app_module._host_priorities(["a", "b"], [1])


def test_the_verb_gate_is_held_through_scoring_and_the_next_preparation() -> None:
    """While /prioritize scores and while the next snapshot is prepared after it, background
    work would wait (the gate is held); once both are done the gate is free again."""
    c, service, _ = client()
    seen: list[int] = []
    prepared = threading.Event()
    policy_score = service.score

    def score(*a: Any, **kw: Any) -> Any:
        seen.append(service.gate.in_flight)
        return policy_score(*a, **kw)

    def prepare_next() -> None:
        seen.append(service.gate.in_flight)
        prepared.set()

    service.score = score  # type: ignore[method-assign]
    service.prepare_next = prepare_next  # type: ignore[method-assign]
    r = c.post("/prioritize", json={"Pod": pod(), "NodeNames": NAMES})
    assert r.status_code == 200, r.text
    assert prepared.wait(5)
    deadline = time.monotonic() + 5
    while service.gate.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == [1, 1] and service.gate.in_flight == 0


def test_verbs_are_served_in_front_of_fastapis_middleware() -> None:
    """/prioritize and /bind never enter FastAPI's own stack (server errors, telemetry, body
    limit, routing); everything else does; every answer carries its request id."""
    app, _, _ = make_app()
    entered: list[str] = []
    front = app.front  # type: ignore[attr-defined]

    def counting_front(inner: Any) -> Any:
        async def counted(scope: Any, receive: Any, send: Any) -> None:
            entered.append(scope.get("path", scope["type"]))
            await inner(scope, receive, send)

        return front(counted)

    app.front = counting_front  # type: ignore[attr-defined]
    c = TestClient(app)
    r = c.post("/prioritize", json={"Pod": pod(), "NodeNames": NAMES})
    assert r.status_code == 200 and len(r.headers["x-request-id"]) == 16
    assert entered == []
    assert c.get("/healthz").status_code == 200
    assert entered == ["/healthz"]
    bad = c.post("/prioritize", json={"Pod": {}})  # invalid: FastAPI answers with its message
    assert bad.status_code == 422 and entered[-1] == "/prioritize"
