"""The shape and spacing validators every public entry point shares.

One message for one mistake: a shape is "3 positive integers (z, y, x) in voxels", a spacing or
a field of view "3 positive numbers (x, y, z) in mm", wherever it is passed.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["positive_ints", "positive_mm"]


def positive_ints(
    value: Any, name: str, *, axes: str = "(z, y, x)", unit: str = "voxels"
) -> tuple[int, int, int]:
    """``value`` as a tuple of 3 integers >= 1, else a ValueError naming ``name``.

    Floats are accepted only when they are whole numbers (``2.0``, not ``2.5``). ``unit`` is
    named in the message ("" for factors).
    """
    try:
        values = list(value)
        out = tuple(int(v) for v in values)
        ok = len(out) == 3 and all(o >= 1 and o == v for o, v in zip(out, values, strict=True))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        unit = f" in {unit}" if unit else ""
        raise ValueError(f"{name} must be 3 positive integers {axes}{unit}, got {value!r}")
    return out[0], out[1], out[2]


def positive_mm(value: Any, name: str, *, axes: str = "(x, y, z)") -> tuple[float, float, float]:
    """``value`` as a tuple of 3 finite floats > 0 (mm), else a ValueError naming ``name``."""
    try:
        out = tuple(float(v) for v in value)
        ok = len(out) == 3 and all(math.isfinite(v) and v > 0 for v in out)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be 3 positive numbers {axes} in mm, got {value!r}")
    return out[0], out[1], out[2]
