"""Long-running local processes of the demo: started detached, tracked by pid files, stopped
by those pid files (never by name), each with its own log file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path


class ProcessError(RuntimeError):
    """A demo process did not start or become healthy; the message names its log."""


def start(name: str, cmd: Sequence[str], state_dir: Path, env: dict[str, str] | None = None) -> int:
    """Start ``cmd`` in its own session (it outlives ``make``); returns the pid."""
    stop(name, state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    log = (state_dir / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        list(cmd),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    (state_dir / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def pid_of(name: str, state_dir: Path) -> int | None:
    try:
        return int((state_dir / f"{name}.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def stop(name: str, state_dir: Path, grace_s: float = 10.0) -> bool:
    """SIGTERM the process (SIGKILL after ``grace_s``); True if one was running."""
    pid = pid_of(name, state_dir)
    (state_dir / f"{name}.pid").unlink(missing_ok=True)
    if pid is None or pid <= 0 or not alive(pid):
        return False
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not alive(pid):
                return True
            time.sleep(0.1)
    return not alive(pid)


def wait_http(url: str, name: str, state_dir: Path, timeout_s: float = 90.0) -> None:
    """Wait for ``url`` to answer 200 while the process lives; fail with its log's tail."""
    deadline = time.monotonic() + timeout_s
    pid = pid_of(name, state_dir)
    last = ""
    while time.monotonic() < deadline:
        if pid is not None and not alive(pid):
            raise ProcessError(f"{name} exited during start-up:\n{log_tail(name, state_dir)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
        except (OSError, urllib.error.URLError) as e:
            last = str(e)
        time.sleep(0.3)
    raise ProcessError(
        f"{name} not healthy at {url} after {timeout_s:.0f} s ({last}); "
        f"log {state_dir / (name + '.log')}:\n{log_tail(name, state_dir)}"
    )


def log_tail(name: str, state_dir: Path, lines: int = 15) -> str:
    try:
        text = (state_dir / f"{name}.log").read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
