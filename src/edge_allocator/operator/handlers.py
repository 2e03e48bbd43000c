"""The kopf wiring: thin raw-event handlers that keep the cache current and wake the controller.

Only raw-event handlers (``@kopf.on.event``) are used: they need no finalizers and write no
handler-progress annotations, so the operator adds nothing to users' objects and an EdgeTask
can always be deleted, even while the operator is down. (kopf's indices are not used: under a
burst of new objects their readiness bookkeeping costs more CPU than the operator itself.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from edge_allocator.cluster.annotations import LABEL_MANAGED
from edge_allocator.operator.controller import Controller
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
    """A registry with the operator's handlers bound to ``ctl`` (and its cache)."""
    registry = kopf.OperatorRegistry()
    cache = ctl.cache
    managed = {LABEL_MANAGED: "true"}
    refresh: dict[str, asyncio.TimerHandle | None] = {"handle": None}

    def schedule_network_refresh() -> None:
        if refresh["handle"] is not None:
            return

        def fire() -> None:
            refresh["handle"] = None
            asyncio.get_running_loop().create_task(ctl.update_networks())
            ctl.topology_changed()

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

    @kopf.on.event(GROUP, VERSION, TASK_PLURAL, id="task_event", registry=registry)
    async def task_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        view = TaskView.from_body(body)
        if event.get("type") == "DELETED":
            cache.drop_task(view.key)
            ctl.forget(view.key)
            return
        cache.put_task(view)
        ctl.spawn(view.key)

    @kopf.on.event("", "v1", "pods", labels=managed, id="pod_event", registry=registry)
    async def pod_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        view = PodView.from_body(body)
        if view is None:
            return
        if event.get("type") == "DELETED":
            cache.drop_pod(view)
        else:
            cache.put_pod(view)
        ctl.spawn((view.namespace, view.task))

    @kopf.on.event("", "v1", "nodes", id="node_event", registry=registry)
    async def node_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        view = NodeView.from_body(body)
        if event.get("type") == "DELETED":
            cache.drop_node(view.name)
            ctl.load.forget(view.name)
        elif not cache.put_node(view):
            return  # a heartbeat or usage update: nothing the operator acts on
        schedule_network_refresh()
        if event.get("type") == "DELETED" or view.ready is False:
            for key in cache.tasks_on(view.name):
                ctl.spawn(key)

    @kopf.on.event(GROUP, VERSION, NETWORK_PLURAL, id="network_event", registry=registry)
    async def network_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        view = NetworkView.from_body(body)
        if event.get("type") == "DELETED":
            cache.drop_network(view.name)
        else:
            cache.put_network(view)
        schedule_network_refresh()

    return registry
