"""The kopf wiring: indices over tasks, pods, nodes and networks, and thin event handlers.

Only raw-event handlers (``@kopf.on.event``) and indices are used: they need no finalizers and
write no handler-progress annotations, so the operator adds nothing to users' objects and an
EdgeTask can always be deleted, even while the operator is down.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from edge_allocator.cluster.annotations import LABEL_MANAGED
from edge_allocator.operator.controller import Controller, Indices, TaskKey
from edge_allocator.operator.views import (
    GROUP,
    NETWORK_PLURAL,
    TASK_PLURAL,
    VERSION,
    NetworkView,
    NodeView,
    PodView,
    TaskView,
)

NETWORK_REFRESH_DELAY_S = 2.0


def build_registry(ctl: Controller) -> kopf.OperatorRegistry:
    """A registry with the operator's indices and handlers bound to ``ctl``."""
    registry = kopf.OperatorRegistry()
    managed = {LABEL_MANAGED: "true"}
    node_state: dict[str, tuple[bool | None, str | None]] = {}
    refresh: dict[str, asyncio.TimerHandle | None] = {"handle": None}

    def capture(kwargs: dict[str, Any]) -> None:
        if ctl.indices is None:
            ctl.indices = Indices(
                tasks=kwargs["tasks"],
                task_pods=kwargs["task_pods"],
                pods_on_nodes=kwargs["pods_on_nodes"],
                nodes=kwargs["nodes"],
                networks=kwargs["networks"],
            )

    def schedule_network_refresh() -> None:
        if refresh["handle"] is not None:
            return

        def fire() -> None:
            refresh["handle"] = None
            asyncio.get_running_loop().create_task(ctl.update_networks())

        refresh["handle"] = asyncio.get_running_loop().call_later(NETWORK_REFRESH_DELAY_S, fire)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        """kopf watches with the same credentials the operator writes with."""
        creds = ctl.api.credentials
        cfg = creds.configuration
        return kopf.ConnectionInfo(
            server=creds.server,
            ca_path=cfg.ssl_ca_cert,
            insecure=not cfg.verify_ssl,
            certificate_path=cfg.cert_file,
            private_key_path=cfg.key_file,
            token=creds.token(),
        )

    # -- indices -----------------------------------------------------------------------------

    @kopf.index(GROUP, VERSION, TASK_PLURAL, id="tasks", registry=registry)
    def tasks(body: kopf.Body, **_: Any) -> dict[TaskKey, TaskView]:
        view = TaskView.from_body(body)
        return {view.key: view}

    @kopf.index("", "v1", "pods", labels=managed, id="task_pods", registry=registry)
    def task_pods(body: kopf.Body, **_: Any) -> dict[TaskKey, PodView] | None:
        view = PodView.from_body(body)
        return None if view is None else {(view.namespace, view.task): view}

    @kopf.index("", "v1", "pods", labels=managed, id="pods_on_nodes", registry=registry)
    def pods_on_nodes(body: kopf.Body, **_: Any) -> dict[str, TaskKey] | None:
        view = PodView.from_body(body)
        if view is None or not view.node_name or view.terminal:
            return None
        return {view.node_name: (view.namespace, view.task)}

    @kopf.index("", "v1", "nodes", id="nodes", registry=registry)
    def nodes(body: kopf.Body, **_: Any) -> dict[str, NodeView]:
        view = NodeView.from_body(body)
        return {view.name: view}

    @kopf.index(GROUP, VERSION, NETWORK_PLURAL, id="networks", registry=registry)
    def networks(body: kopf.Body, **_: Any) -> dict[None, NetworkView]:
        return {None: NetworkView.from_body(body)}

    # -- handlers ----------------------------------------------------------------------------

    @kopf.on.event(GROUP, VERSION, TASK_PLURAL, id="task_event", registry=registry)
    async def task_event(event: kopf.RawEvent, body: kopf.Body, **kwargs: Any) -> None:
        capture(kwargs)
        key = (str(body.metadata.namespace), str(body.metadata.name))
        if event.get("type") == "DELETED":
            ctl.forget(key)
            return
        await ctl.reconcile(key)

    @kopf.on.event("", "v1", "pods", labels=managed, id="pod_event", registry=registry)
    async def pod_event(body: kopf.Body, **kwargs: Any) -> None:
        capture(kwargs)
        view = PodView.from_body(body)
        if view is not None:
            await ctl.reconcile((view.namespace, view.task))

    @kopf.on.event("", "v1", "nodes", id="node_event", registry=registry)
    async def node_event(event: kopf.RawEvent, body: kopf.Body, **kwargs: Any) -> None:
        capture(kwargs)
        view = NodeView.from_body(body)
        deleted = event.get("type") == "DELETED"
        state = (view.ready, view.zone)
        if deleted:
            node_state.pop(view.name, None)
        elif node_state.get(view.name) == state:
            return  # a heartbeat or usage update: nothing the operator acts on
        else:
            node_state[view.name] = state
        ready = None if deleted else view.ready
        ctl.topology_changed()
        schedule_network_refresh()
        if deleted or ready is False:
            assert ctl.indices is not None
            for key in set(ctl.indices.pods_on_nodes.get(view.name, ())):
                ctl.spawn(key)

    @kopf.on.event(GROUP, VERSION, NETWORK_PLURAL, id="network_event", registry=registry)
    async def network_event(**kwargs: Any) -> None:
        capture(kwargs)
        ctl.topology_changed()
        schedule_network_refresh()

    return registry
