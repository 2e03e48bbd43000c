"""Kubernetes resource quantities ("250m", "1.5", "128Mi", "1e9") to the snapshot's units.

Shared by the operator and the extender.

The snapshot counts CPU in millicores and memory in MiB; the API speaks quantities. Rounding is
up, as kube-scheduler rounds a request (a pod asking for 1 byte still takes room).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))([eE][+-]?[0-9]+|[a-zA-Z]*)$")

_SUFFIX: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}

_MIB = Decimal(2**20)


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


def parse_quantity(value: str | int | float) -> Decimal:
    """The quantity's value in base units (cores, bytes)."""
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a quantity")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise QuantityError(f"{value!r} is not a finite quantity")
        return Decimal(str(value))
    text = value.strip()
    m = _QUANTITY.match(text)
    if m is None:
        raise QuantityError(f"{value!r} is not a quantity (expected e.g. 250m, 1.5, 128Mi)")
    number, suffix = m.groups()
    try:
        base = Decimal(number)
        if suffix[:1] in ("e", "E") and suffix not in _SUFFIX:  # 1e3, not the E/Ei suffixes
            return base * (Decimal(10) ** int(suffix[1:]))
    except ArithmeticError as exc:  # InvalidOperation, and Overflow from a huge exponent
        raise QuantityError(f"{value!r} is not a representable quantity") from exc
    except ValueError as exc:
        raise QuantityError(f"{value!r} is not a quantity") from exc
    if suffix not in _SUFFIX:
        raise QuantityError(f"{value!r}: unknown suffix {suffix!r}")
    return base * _SUFFIX[suffix]


_INT64_MAX = 2**63 - 1


def _counted(value: str | int | float, scale: Decimal, unit: str) -> Decimal:
    """The quantity in the integer unit kube-scheduler counts it in (int64: millicores for
    CPU, bytes for memory); beyond that range it is refused, as the scheduler cannot add it."""
    scaled = parse_quantity(value) * scale
    if abs(scaled) > _INT64_MAX:
        raise QuantityError(f"{value!r} is too large (more than 2^63-1 {unit})")
    return scaled


def cpu_millicores(value: str | int | float) -> int:
    """CPU quantity to millicores, rounded up."""
    return math.ceil(_counted(value, Decimal(1000), "millicores"))


def memory_mib(value: str | int | float) -> int:
    """Memory quantity to MiB, rounded up."""
    return math.ceil(_counted(value, Decimal(1), "bytes") / _MIB)
