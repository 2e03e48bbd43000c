"""The kube-scheduler extender v1 wire format, as pydantic models with the Go field names.

kube-scheduler (``k8s.io/kube-scheduler/extender/v1``) marshals Go structs without JSON tags, so
the keys are the Go field names: ``Pod``, ``Nodes``, ``NodeNames``, ``FailedNodes``,
``FailedAndUnresolvableNodes``, ``Error``, ``Host``, ``Score``. Only the parts of the Pod and Node
objects that scoring needs are modelled; everything else is ignored on the way in (and a
``Nodes`` list is echoed back untouched in the ``nodeCacheCapable: false`` mode).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ObjectMeta(_Lenient):
    name: str = Field(min_length=1, max_length=253)
    namespace: str = Field(default="default", max_length=63)
    uid: str = Field(default="", max_length=128)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class ResourceRequirements(_Lenient):
    requests: dict[str, str | int | float] = Field(default_factory=dict)
    limits: dict[str, str | int | float] = Field(default_factory=dict)


class Container(_Lenient):
    name: str = ""
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    restart_policy: str | None = Field(default=None, alias="restartPolicy")


class PodSpec(_Lenient):
    containers: list[Container] = Field(default_factory=list)
    init_containers: list[Container] = Field(default_factory=list, alias="initContainers")
    overhead: dict[str, str | int | float] = Field(default_factory=dict)
    resources: ResourceRequirements | None = None  # pod-level requests (PodLevelResources)
    scheduler_name: str = Field(default="", alias="schedulerName")


class Pod(_Lenient):
    metadata: ObjectMeta
    spec: PodSpec = Field(default_factory=PodSpec)


class NodeMeta(_Lenient):
    name: str = Field(min_length=1, max_length=253)


class Node(_Lenient):
    metadata: NodeMeta


class NodeList(_Lenient):
    items: list[Node] = Field(default_factory=list)


MAX_NODES = 20_000
"""More candidates than any real cluster sends; bounds the work one request can cause."""


class ExtenderArgs(_Lenient):
    """What kube-scheduler POSTs to ``/filter`` and ``/prioritize``.

    With ``nodeCacheCapable: true`` only ``NodeNames`` is set; otherwise ``Nodes``.
    """

    Pod: Pod
    Nodes: NodeList | None = None
    NodeNames: list[str] | None = Field(default=None, max_length=MAX_NODES)

    @model_validator(mode="after")
    def _one_node_form(self) -> ExtenderArgs:
        if self.NodeNames is None and self.Nodes is None:
            raise ValueError(
                "one of NodeNames (nodeCacheCapable: true) or Nodes (nodeCacheCapable: false) "
                "is required"
            )
        if self.Nodes is not None and len(self.Nodes.items) > MAX_NODES:
            raise ValueError(f"Nodes.items: at most {MAX_NODES} nodes")
        return self

    def candidate_names(self) -> list[str]:
        if self.NodeNames is not None:
            return self.NodeNames
        assert self.Nodes is not None
        return [n.metadata.name for n in self.Nodes.items]


class ExtenderFilterResult(BaseModel):
    """The ``/filter`` answer. ``FailedAndUnresolvableNodes`` are nodes preemption cannot fix."""

    Nodes: dict[str, Any] | None = None
    NodeNames: list[str] | None = None
    FailedNodes: dict[str, str] = Field(default_factory=dict)
    FailedAndUnresolvableNodes: dict[str, str] = Field(default_factory=dict)
    Error: str = ""


class HostPriority(BaseModel):
    """One entry of the ``/prioritize`` answer (a JSON list of these): score 0..10."""

    Host: str
    Score: int = Field(ge=0, le=10)


class ExtenderBindingArgs(_Lenient):
    """What kube-scheduler POSTs to ``/bind`` (extender v1 ``ExtenderBindingArgs``)."""

    PodName: str = Field(min_length=1, max_length=253)
    PodNamespace: str = Field(min_length=1, max_length=63)
    PodUID: str = Field(default="", max_length=128)
    Node: str = Field(min_length=1, max_length=253)


class ExtenderBindingResult(BaseModel):
    """The ``/bind`` answer: an empty ``Error`` means bound."""

    Error: str = ""
