"""Imports point one way (docs/architecture.md): read from the source, lazy imports included.

Each rule names a part of the package and the only medzoo modules it may import (anything
outside medzoo is checked separately: the backend-agnostic parts must not touch TensorFlow,
SimpleITK or the hub)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "medzoo"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function, as absolute names."""
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _imports_of(part: str) -> dict[str, set[str]]:
    """module -> its imports, for ``part`` (a module or a subpackage of medzoo)."""
    path = PACKAGE.parent / Path(*part.split("."))
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]
    return {_module_name(f): _imports(f) for f in files}


def _medzoo_modules(names: set[str]) -> set[str]:
    """The medzoo modules among ``names`` (a name that is a module's attribute counts as the
    module: ``medzoo.geometry.Geometry`` -> ``medzoo.geometry``)."""
    found = set()
    for name in names:
        if name != "medzoo" and not name.startswith("medzoo."):
            continue
        parts = name.split(".")
        while len(parts) > 1:
            candidate = PACKAGE.parent / Path(*parts)
            if candidate.is_dir() or candidate.with_suffix(".py").is_file():
                break
            parts.pop()
        found.add(".".join(parts))
    return found - {"medzoo"}


# part -> the medzoo modules (or subpackages) it may import
ALLOWED = {
    "medzoo.layers": {"medzoo.layers"},
    "medzoo.losses": set(),
    "medzoo.metrics": {"medzoo.losses"},
    "medzoo.models": {"medzoo.layers", "medzoo.models"},
    "medzoo.geometry": set(),
    "medzoo.normalization": set(),
    "medzoo.spec": set(),
    "medzoo.nifti_header": set(),
    "medzoo.io": {"medzoo.geometry", "medzoo.nifti_header"},
    "medzoo.preprocessing": {"medzoo.geometry", "medzoo.normalization"},
    "medzoo.assets": set(),
}
# parts that must never import these, however lazily
FORBIDDEN = {
    "medzoo.inference": {"medzoo.train", "medzoo.cohort", "medzoo.cli"},
    "medzoo.models": {"medzoo.tasks", "medzoo.hub", "medzoo.train", "medzoo.inference"},
    "medzoo.synth": {"medzoo.train", "medzoo.inference", "medzoo.hub", "medzoo.models"},
    "medzoo.data": {"medzoo.train", "medzoo.inference", "medzoo.hub", "medzoo.models"},
    "medzoo.hub": {"medzoo.train", "medzoo.inference", "medzoo.cohort"},
}
BACKEND_AGNOSTIC = ("medzoo.layers", "medzoo.losses", "medzoo.metrics", "medzoo.models")


def _inside(module: str, part: str) -> bool:
    return module == part or module.startswith(part + ".")


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_the_lower_layers_import_only_what_lies_below_them(part):
    for module, names in _imports_of(part).items():
        extra = {
            m
            for m in _medzoo_modules(names)
            if not any(_inside(m, allowed) for allowed in ALLOWED[part] | {module})
        }
        assert not extra, f"{module} imports {sorted(extra)}; {part} may import {ALLOWED[part]}"


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_nothing_imports_upward(part):
    for module, names in _imports_of(part).items():
        upward = {m for m in _medzoo_modules(names) for bad in FORBIDDEN[part] if _inside(m, bad)}
        assert not upward, f"{module} imports {sorted(upward)}, above it"


@pytest.mark.parametrize("part", BACKEND_AGNOSTIC)
def test_layers_models_losses_and_metrics_use_keras_only(part):
    for module, names in _imports_of(part).items():
        backends = {n.split(".")[0] for n in names} & {"tensorflow", "jax", "torch", "SimpleITK"}
        assert not backends, f"{module} imports {sorted(backends)}; use keras.ops"
