"""Build the dev cluster's Go binaries once, with progress, and cache them by version.

A group is rebuilt only when its go.mod/go.sum change (the cache key hashes them) or its
binaries are missing. Builds run with ``CGO_ENABLED=0 -trimpath`` and version stamps, as the
upstream release builds do.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from edge_allocator.devcluster import paths
from edge_allocator.devcluster.components import GROUPS, MIN_GO, NODE_GROUPS, ComponentGroup


class BuildError(RuntimeError):
    """A binary could not be built; the message says what to do."""


def go_version(go: str = "go") -> tuple[int, int]:
    """The installed Go toolchain's (major, minor); BuildError when Go is missing."""
    exe = shutil.which(go)
    if exe is None:
        raise BuildError(
            f"Go is not installed (no {go!r} on PATH); the dev cluster builds Kubernetes from "
            f"Go modules and needs Go >= {MIN_GO[0]}.{MIN_GO[1]}: https://go.dev/doc/install"
        )
    out = subprocess.run([exe, "env", "GOVERSION"], capture_output=True, text=True, check=False)
    return parse_go_version(out.stdout.strip())


def parse_go_version(text: str) -> tuple[int, int]:
    m = re.match(r"go(\d+)\.(\d+)", text)
    if not m:
        raise BuildError(f"cannot read the Go version from {text!r}")
    return int(m.group(1)), int(m.group(2))


def check_go(go: str = "go") -> None:
    have = go_version(go)
    if have < MIN_GO:
        raise BuildError(
            f"Go {have[0]}.{have[1]} is too old: the pinned Kubernetes modules need Go >= "
            f"{MIN_GO[0]}.{MIN_GO[1]}"
        )


def module_dir(group: ComponentGroup) -> Path:
    return paths.repo_root() / "hack" / "devcluster" / group.module_name


def cache_key(group: ComponentGroup) -> str:
    """``<group>-<version>-<hash of go.mod + go.sum + build flags>``."""
    h = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        f = module_dir(group) / name
        if f.exists():
            h.update(f.read_bytes())
    h.update(group.ldflags().encode())
    h.update(repr(sorted(group.packages.items())).encode())
    return f"{group.group}-{group.version}-{h.hexdigest()[:12]}"


def group_output_dir(group: ComponentGroup) -> Path:
    return paths.user_binary_cache() / cache_key(group)


def _run_build(group: ComponentGroup, out_dir: Path, log: Callable[[str], None]) -> None:
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    env = {**os.environ, "CGO_ENABLED": "0"}
    cmd = [
        "go", "build", "-v", "-trimpath", "-ldflags", group.ldflags(), "-o", str(tmp) + "/",
        *group.packages.values(),
    ]  # fmt: skip
    log(f"[build] {group.group} {group.version}: go build {' '.join(group.packages)}")
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=module_dir(group), env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    compiled, last_report = 0, started
    tail: list[str] = []
    for line in proc.stdout:
        tail = [*tail[-30:], line.rstrip()]
        if not line.startswith(("go: ", "#")):
            compiled += 1
        now = time.monotonic()
        if now - last_report >= 15:
            log(f"[build] {group.group}: {compiled} packages compiled, {now - started:.0f}s")
            last_report = now
    if proc.wait() != 0:
        raise BuildError(f"building {group.group} failed:\n" + "\n".join(tail))
    for name in group.packages:
        # A package path's last element names the binary go build writes; rename to ours.
        built = tmp / group.packages[name].rsplit("/", 1)[-1]
        if built != tmp / name:
            built.rename(tmp / name)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    log(f"[build] {group.group} done in {time.monotonic() - started:.0f}s")


def ensure_binaries(
    log: Callable[[str], None] | None = None, *, node: bool = False
) -> dict[str, Path]:
    """Build what is missing and link every binary into ``.cache/bin``; returns name -> path.

    ``node`` adds the real node's components (kubelet, kube-proxy, pause, CoreDNS).
    """
    say = log or (lambda s: print(s, file=sys.stderr, flush=True))
    result: dict[str, Path] = {}
    bin_dir = paths.bin_dir()
    bin_dir.mkdir(parents=True, exist_ok=True)
    checked_go = False
    for group in (*GROUPS, *(NODE_GROUPS if node else ())):
        out_dir = group_output_dir(group)
        if not all((out_dir / name).is_file() for name in group.packages):
            if not checked_go:
                check_go()
                checked_go = True
            # One build per group at a time (two `make` runs, a test and a terminal): the
            # second waits for the first and then finds the binaries.
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            with out_dir.with_name(out_dir.name + ".lock").open("w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not all((out_dir / name).is_file() for name in group.packages):
                    _run_build(group, out_dir, say)
        for name in group.packages:
            link = bin_dir / name
            target = out_dir / name
            if link.is_symlink() or link.exists():
                if link.resolve() == target.resolve():
                    result[name] = link
                    continue
                link.unlink()
            link.symlink_to(target)
            result[name] = link
    return result
