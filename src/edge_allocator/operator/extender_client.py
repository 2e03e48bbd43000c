"""Ask the extender why it scored a pod the way it did (``GET /v1/decisions/{ns}/{pod}``),
and where it would place a running task now (``POST /v1/score``, for re-placement).

Used only when the decision annotation is not on the pod yet: the extender writes that
annotation off its request path, so a freshly bound pod may not carry it. A slow or absent
extender never blocks the operator for longer than the configured timeout. When the
extender's admin API wants a bearer token, the operator reads it from a file (a mounted
Secret) on every request, so a rotated token is picked up without a restart.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from edge_allocator.cluster.annotations import DecisionRecord
from edge_allocator.operator.replacement import WhatIf
from edge_allocator.operator.views import TaskView


class ExtenderDecisions:
    def __init__(self, base_url: str, timeout_s: float, token_file: str | None = None) -> None:
        self._base = base_url.rstrip("/")
        self._client = httpx.AsyncClient(timeout=timeout_s)
        self._token_file = Path(token_file) if token_file else None

    async def close(self) -> None:
        await self._client.aclose()

    def _headers(self) -> dict[str, str]:
        if self._token_file is None:
            return {}
        token = self._token_file.read_text().strip()
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def fetch(
        self, namespace: str, pod: str, uid: str | None = None
    ) -> tuple[DecisionRecord | None, str | None]:
        """The record, or ``None`` and a short note saying why there is none. With ``uid``, a
        record the extender holds for an earlier pod of the same name is not taken."""
        url = f"{self._base}/v1/decisions/{namespace}/{pod}"
        try:
            headers = self._headers()
        except OSError as err:
            return None, f"cannot read the extender token file: {err.strerror or err}"
        try:
            resp = await self._client.get(url, headers=headers)
        except httpx.HTTPError as err:
            return None, f"extender unreachable: {type(err).__name__}"
        if resp.status_code == 404:
            return None, "the extender holds no record for this pod"
        if resp.status_code in (401, 403):
            return None, (
                f"extender refused the request (HTTP {resp.status_code}): give the operator "
                "the extender's admin token with --extender-token-file"
            )
        if resp.status_code != 200:
            return None, f"extender answered HTTP {resp.status_code}"
        try:
            body = resp.json()
            record = DecisionRecord.from_dict(body["decision"])
        except (ValueError, TypeError, KeyError):
            return None, "the extender's record could not be parsed"
        if uid and body.get("uid") and body["uid"] != uid:
            return None, "the extender's record is for an earlier pod of the same name"
        return record, None

    async def where_now(self, task: TaskView, pod_uid: str) -> WhatIf:
        """Where the policy would place ``task`` now, its running pod taken off its node
        (``POST /v1/score`` with ``currentPodUid``). Raises :class:`WhatIfError` with a short
        reason when the extender cannot answer."""
        body = {
            "task": {
                # the extender takes the requests from the running pod (currentPodUid)
                "cpuRequestM": 0,
                "memRequestMib": 0,
                "dataSourceSite": str(task.status.get("dataSourceSite") or ""),
                "dataSourceNode": task.data_source_node,
                "inputMb": float(task.input_mb),
                "latencyBudgetMs": task.latency_budget_ms,
            },
            "policy": task.policy,
            "currentPodUid": pod_uid,
        }
        try:
            resp = await self._client.post(
                f"{self._base}/v1/score", json=body, headers=self._headers()
            )
        except (httpx.HTTPError, OSError) as err:
            raise WhatIfError(f"extender unreachable: {type(err).__name__}", False) from err
        if resp.status_code != 200:
            raise WhatIfError(f"extender answered HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            data = resp.json()
            return WhatIf(
                chosen=data.get("chosen"),
                current_node=data.get("currentNode"),
                current_rank=data.get("currentRank"),
                gain_s=data.get("predictedGainS"),
                gain_ratio=data.get("predictedGainRatio"),
                policy=str(data["policy"]),
                model_version=str(data["modelVersion"]),
                filtered=dict(data.get("filtered") or {}),
            )
        except (ValueError, TypeError, KeyError) as err:
            raise WhatIfError("the extender's what-if answer could not be parsed") from err


class WhatIfError(Exception):
    """The extender could not say where a task would go (down, refusing, or not synced)."""

    def __init__(self, message: str, reachable: bool = True) -> None:
        super().__init__(message)
        self.reachable = reachable
