"""numba compilation for the simulator's hot loops, cached where the file system allows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from numba import njit


def compiled(fn: Callable[..., Any]) -> Any:
    """``fn`` compiled with numba, once per machine (cached beside the module or in the user's
    cache), or once per process where neither is writable (a read-only image). No fastmath,
    and numpy's error model (``x / 0.0`` is inf or nan, not an exception): IEEE results, the
    same floats as numpy gives.

    numba keys its cache on the file that defines the kernel: a kernel reads row numbers and
    other constants as arguments, not as globals of another module, so that a change there
    cannot leave a stale cached kernel behind (after changing the flags here, delete the
    ``__pycache__/*.nbi`` and ``*.nbc`` files)."""
    try:
        return njit(cache=True, nogil=True, error_model="numpy")(fn)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return njit(nogil=True, error_model="numpy")(fn)
