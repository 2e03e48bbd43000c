"""Every tunable of the extender in one documented, validated place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8888
    policy: str = "auto"
    """Initial policy: a registry name, or ``auto`` (the shipped GNN, else ``est-completion``)."""
    kubeconfig: str | None = None
    """Kubeconfig path; None means ``$KUBECONFIG``, then in-cluster config."""
    tls_cert: str | None = None
    tls_key: str | None = None
    client_ca: str | None = None
    """When set (with TLS), /filter and /prioritize require a client certificate from this CA."""
    admin_token: str | None = None
    """Bearer token for /v1/*; None leaves the admin API open (a warning is logged)."""
    max_body_bytes: int = 8 * 1024 * 1024
    max_drain_bytes: int = 256 * 1024 * 1024
    """An oversized body up to this size is read and dropped, so the client gets its 413
    instead of a reset connection; a larger one is answered 413 and the connection closed."""
    admin_rate_per_s: float = 20.0
    admin_burst: int = 40
    decision_capacity: int = 10_000
    decision_write_interval_s: float = 0.2
    decision_max_pending: int = 5_000
    min_rebuild_s: float = 0.02
    metrics_interval_s: float = 15.0
    metrics_max_age_s: float = 180.0
    assume_ttl_s: float = 30.0
    bind_grace_s: float = 5.0
    """How long a decision waits for the bind verb to record it before it is PATCHed."""
    max_batch: int = 64
    shadow_policy: str | None = None
    """A second policy that scores every decision off the request path, for comparison (the
    admin API can set or clear it later: PUT /v1/shadow)."""
    verb_workers: int = 1
    """Threads that run /filter and /prioritize off the event loop; 1 keeps decisions serial,
    so each pod of a burst is scored with the previous one's placement already counted."""
    inline_candidates: int = 2_000
    """/prioritize is scored on the event loop itself, without a hand-off to a verb worker, when
    its work is bounded: at most this many candidates, a policy whose per-snapshot work for the
    current snapshot is done, no other verb in flight (otherwise, and at 0, a worker scores it).
    At ~1 us per candidate the loop is held ~2 ms at most; the two thread hand-offs it saves are
    ~0.3 ms of a 1,000-candidate request."""
    model_refresh_s: float = 5.0
    """How often a background thread re-lists the models directory (never a request)."""
    log_json: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} must be in 1..65535")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("--tls-cert and --tls-key go together")
        if self.client_ca and not self.tls_cert:
            raise ValueError("--client-ca needs TLS (--tls-cert/--tls-key)")
        for name in (
            "max_body_bytes",
            "admin_burst",
            "decision_capacity",
            "max_batch",
            "verb_workers",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.inline_candidates < 0:
            raise ValueError("inline_candidates must be >= 0")
        if self.admin_rate_per_s <= 0:
            raise ValueError("admin_rate_per_s must be > 0")
        if self.model_refresh_s <= 0:
            raise ValueError("model_refresh_s must be > 0")
        if not 0 <= self.bind_grace_s <= 3600:
            raise ValueError("bind_grace_s (--bind-grace) must be between 0 and 3600 seconds")
