"""Pydantic bodies of the admin and what-if API (the verbs' bodies are in ``wire``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edge_allocator.cluster.snapshot import TaskSpec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskBody(_Strict):
    """A task described by hand, in the units of the EdgeTask spec."""

    cpuRequestM: int = Field(ge=0, le=1_000_000, description="CPU request in millicores")
    memRequestMib: int = Field(ge=0, le=100_000_000, description="memory request in MiB")
    dataSourceSite: str = Field(min_length=1, max_length=63)
    dataSourceNode: str | None = Field(default=None, max_length=253)
    inputMb: float = Field(default=0.0, ge=0, le=1e9, allow_inf_nan=False)
    latencyBudgetMs: float | None = Field(default=None, gt=0, le=1e9, allow_inf_nan=False)
    workCpuS: float | None = Field(default=None, ge=0, le=1e9, allow_inf_nan=False)

    def to_task(self) -> TaskSpec:
        return TaskSpec(
            cpu_request_m=self.cpuRequestM,
            mem_request_mib=self.memRequestMib,
            data_source_site=self.dataSourceSite,
            data_source_node=self.dataSourceNode,
            input_mb=self.inputMb,
            work_cpu_s=self.workCpuS,
            latency_budget_ms=self.latencyBudgetMs,
        )


class ScoreRequest(_Strict):
    task: TaskBody
    candidates: list[str] | None = Field(
        default=None, max_length=20_000, description="node names; default every node"
    )
    policy: str | None = Field(
        default=None, max_length=253, description="a policy name; default the active one"
    )
    currentPodUid: str | None = Field(
        default=None,
        max_length=128,
        description="re-placement: the uid of the task's running pod; the task is scored as if "
        "that pod were not placed (its requests are taken off its node and used as the task's), "
        "and the answer says how the pod's node compares with the chosen one",
    )


class BatchScoreRequest(_Strict):
    requests: list[ScoreRequest] = Field(min_length=1)


class CandidateOut(BaseModel):
    node: str
    rank: int
    score: int
    raw: float
    latencyMs: float


class ScoreResponse(BaseModel):
    policy: str
    modelVersion: str
    snapshotRevision: int
    chosen: str | None
    candidates: list[CandidateOut]
    filtered: dict[str, str] = Field(description="node -> why the filter verb would drop it")
    currentNode: str | None = Field(
        default=None, description="with currentPodUid: the node that pod is bound to"
    )
    currentRank: int | None = Field(
        default=None, description="the current node's rank (none when it was filtered out)"
    )
    predictedGainS: float | None = Field(
        default=None,
        description="estimated completion seconds saved by moving to the chosen node",
    )
    predictedGainRatio: float | None = Field(
        default=None, description="the same gain as a fraction of the current estimate"
    )


class BatchScoreResponse(BaseModel):
    results: list[ScoreResponse]


class ActiveModel(BaseModel):
    name: str
    policy: str
    version: str
    activatedAt: float


class ModelEntry(BaseModel):
    name: str
    kind: str = Field(description="baseline or model-file")
    version: str
    shipped: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)


class ModelsResponse(BaseModel):
    active: ActiveModel
    policies: list[str]
    models: list[ModelEntry]


class DecisionResponse(BaseModel):
    namespace: str
    pod: str
    uid: str
    source: str = Field(description="memory (this replica) or annotation (the pod)")
    decision: dict[str, Any]


class ErrorDetail(BaseModel):
    status: int
    message: str
    requestId: str


class ErrorResponse(BaseModel):
    error: ErrorDetail
