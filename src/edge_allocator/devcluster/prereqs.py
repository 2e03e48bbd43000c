"""Host prerequisites of the real node and the image build: Debian packages and root.

What the dev cluster runs for real (containerd, runc, the CNI plugins, iptables, buildah,
debootstrap) comes from Debian. When a tool is missing and we run as root on Debian, it is
installed with apt-get (as ``.ci/run`` does); otherwise the error names the package to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path


class PrerequisiteError(RuntimeError):
    """A host prerequisite is missing and cannot be installed here; the message says what."""


# command (or file) -> Debian package that provides it
IMAGE_TOOLS: dict[str, str] = {"buildah": "buildah", "debootstrap": "debootstrap"}
NODE_TOOLS: dict[str, str] = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    "iptables": "iptables",
    "conntrack": "conntrack",
    "ip": "iproute2",
    "mount": "mount",
}


def is_root() -> bool:
    return os.geteuid() == 0


def missing(tools: Mapping[str, str]) -> list[str]:
    """Debian packages (deduplicated, in order) whose tools are absent."""
    out: list[str] = []
    for tool, package in tools.items():
        present = Path(tool).exists() if tool.startswith("/") else shutil.which(tool) is not None
        if not present and package not in out:
            out.append(package)
    return out


def ensure_packages(tools: Mapping[str, str], why: str, log: Callable[[str], None]) -> None:
    """Install the packages providing ``tools`` when missing (root + apt-get), else raise."""
    need = missing(tools)
    if not need:
        return
    if not is_root() or shutil.which("apt-get") is None:
        raise PrerequisiteError(
            f"{why} needs these Debian packages: {' '.join(need)}; install them "
            f"(`sudo apt-get install {' '.join(need)}`) or run as root on Debian to have them "
            f"installed"
        )
    log(f"[prereq] installing Debian packages for {why}: {' '.join(need)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *need],
    ):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise PrerequisiteError(
                f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
            )
    still = missing(tools)
    if still:
        raise PrerequisiteError(f"{why}: still missing after apt-get install: {' '.join(still)}")


def require_root(why: str) -> None:
    if not is_root():
        raise PrerequisiteError(
            f"{why} needs root (containers, cgroups, network namespaces and iptables rules); "
            f"run it as root, e.g. `sudo -E .venv/bin/edge-allocator ...`"
        )
