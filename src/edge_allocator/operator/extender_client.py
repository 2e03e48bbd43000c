"""Ask the extender why it scored a pod the way it did (``GET /v1/decisions/{ns}/{pod}``).

Used only when the decision annotation is not on the pod yet: the extender writes that
annotation off its request path, so a freshly bound pod may not carry it. A slow or absent
extender never blocks the operator for longer than the configured timeout.
"""

from __future__ import annotations

import httpx

from edge_allocator.cluster.annotations import DecisionRecord


class ExtenderDecisions:
    def __init__(self, base_url: str, timeout_s: float) -> None:
        self._base = base_url.rstrip("/")
        self._client = httpx.AsyncClient(timeout=timeout_s)

    async def close(self) -> None:
        await self._client.aclose()

    async def fetch(self, namespace: str, pod: str) -> tuple[DecisionRecord | None, str | None]:
        """The record, or ``None`` and a short note saying why there is none."""
        url = f"{self._base}/v1/decisions/{namespace}/{pod}"
        try:
            resp = await self._client.get(url)
        except httpx.HTTPError as err:
            return None, f"extender unreachable: {type(err).__name__}"
        if resp.status_code == 404:
            return None, "the extender holds no record for this pod"
        if resp.status_code != 200:
            return None, f"extender answered HTTP {resp.status_code}"
        try:
            return DecisionRecord.from_json(resp.text), None
        except (ValueError, TypeError, KeyError):
            return None, "the extender's record could not be parsed"
