"""Where the dev cluster keeps its files: the repo's ``.cache/`` and a per-user binary cache.

Binaries live in a per-user cache keyed by version and by a hash of the module's go.mod/go.sum,
so a fresh clone on the same machine starts without building; ``.cache/bin`` holds links to them.
"""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The checkout that holds ``hack/devcluster`` (``EDGE_ALLOCATOR_ROOT`` overrides)."""
    env = os.environ.get("EDGE_ALLOCATOR_ROOT")
    if env:
        return Path(env).resolve()
    for start in (Path.cwd(), Path(__file__).resolve()):
        for candidate in (start, *start.parents):
            if (candidate / "hack" / "devcluster").is_dir():
                return candidate
    raise FileNotFoundError(
        "cannot find the Edge Allocator checkout (no hack/devcluster above the current "
        "directory); run from the repository or set EDGE_ALLOCATOR_ROOT"
    )


def cache_dir() -> Path:
    return repo_root() / ".cache"


def bin_dir() -> Path:
    return cache_dir() / "bin"


STATE_DIR_ENV = "EDGE_ALLOCATOR_DEVCLUSTER_DIR"


def state_dir() -> Path:
    """Cluster state: kubeconfig, kwokctl work dir, logs, pid files.

    ``EDGE_ALLOCATOR_DEVCLUSTER_DIR`` moves it, so that a second cluster (another port, e.g.
    the real-node tests) can run next to the default one.
    """
    env = os.environ.get(STATE_DIR_ENV)
    if env:
        return Path(env).resolve()
    return cache_dir() / "devcluster"


def user_binary_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edge-allocator" / "bin"


def user_image_cache() -> Path:
    """Base root filesystems and image archives (next to the binary cache)."""
    return user_binary_cache().parent / "images"
