"""Lazy re-exports for the packages' ``__init__`` files (PEP 562).

A package lists ``{public name: module}`` and gets a module-level ``__getattr__`` that imports
the module the first time the name is used, so importing the package stays cheap (no Keras,
TensorFlow or SimpleITK until something needs them).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(
    package: str, names: Mapping[str, str], extra: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` re-exporting ``names`` lazily; ``extra``
    names (defined in the package itself) are listed by ``dir()`` too."""
    listed = sorted({*names, *extra})

    def __getattr__(name: str) -> Any:  # noqa: N807
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:  # noqa: N807
        return list(listed)

    return __getattr__, __dir__
