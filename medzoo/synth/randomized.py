"""Domain-randomised training scans from whole-head label maps, drawn afresh for every sample.

The idea is SynthSeg's (Billot et al., Medical Image Analysis 2023): a network that only ever
sees scans whose contrast, resolution, bias and noise are random learns to segment from shape,
so it works on real scans of any contrast. This is medzoo's own implementation:

1. Anatomy (:class:`LabelMapBank`): individual whole-head label maps (FreeSurfer-aseg brain ids
   plus one id per head tissue), reoriented to RAS and cropped to the head, kept in memory as
   compact uint8 indices. Nothing else is cached: every sample below is new.
2. Geometry: a random affine (rotation, per-axis scaling, shear) and a smooth random
   displacement about a random centre (a brain voxel most of the time, else any head voxel, so
   that face and neck appear, and optionally any point of the head's box widened by half a
   patch, so that windows of mostly air appear too), sampled with nearest neighbour onto a 1 mm
   patch grid.
3. Intensities, per channel: each label id its own Gaussian (left and right independent), drawn
   either uniformly at random (a random Gaussian mixture) or from a realistic contrast profile of
   :mod:`medzoo.synth.contrasts` with 10 % jitter; the background (air) is dark and either noisy
   or exactly black. Most samples also split the head tissues of the patch into a few random
   regions (cells of smooth random fields, 4-24 mm), each with its own Gaussian: drawn at random,
   or in a realistic contrast from the head tissues and from grey matter, white matter and CSF.
   A label map gives the neck and face one or two large homogeneous tissues, while a real neck
   has muscle, fat and fascia whose contrast looks like grey and white matter; without these
   regions the network labelled the neck and tongue of real scans as brain.
4. Acquisition, per channel: multiplicative smooth bias field; a random acquired voxel size,
   often with thick slices (1.5-8 mm) along a random axis: Gaussian slice profile (FWHM = the
   voxel size), sampling on the coarse grid, Gaussian noise there, linear interpolation back onto
   the 1 mm grid; then a random gamma.
5. Normalisation as inference does it (:data:`medzoo.registry.MR_PERCENTILE`): clip to the 0.5 and
   99.5 percentiles of the non-zero voxels and scale to [0, 1]. Inference takes them over the
   whole scan, so a patch of mostly air takes them over the whole head (voxels drawn at random
   from its label map, with the sample's intensities): its air stays dark, as a real scan's air
   is in a window beside the head, instead of being stretched to [0, 1].

Optional channels that a sample leaves out are filled with ``absent_value`` (outside [0, 1]), so
the network learns that value as "no scan", never as a copy of another channel.

Arrays are (z, y, x[, c]) in RAS voxel order (x to the right, y anterior, z superior), 1 mm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from medzoo.synth.contrasts import PROFILES
from medzoo.synth.labels import ASEG_TO_MRBRAINS13, ASEG_TO_TISSUE

__all__ = [
    "HEAD_TISSUE_IDS",
    "LABEL_MAP_TO_MRBRAINS13",
    "LabelMap",
    "LabelMapBank",
    "RandomizedConfig",
    "RandomizedRenderer",
]

_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))

#: Ids of the SynthSeg whole-head maps beyond the IBSR aseg table, and their MRBrainS13 class:
#: lesions (25, 57) are white-matter lesions, vessels (30, 62) and the optic chiasm (85) lie in
#: white matter, the fifth ventricle (72) is a ventricle. Head tissues (ids >= 100: skull, skin,
#: eyes, muscles, other soft tissue) are background.
_EXTRA_BRAIN = {25: 4, 57: 4, 30: 3, 62: 3, 72: 6, 85: 3}
HEAD_TISSUE_IDS = range(100, 1000)

#: Realistic-profile tissues a head tissue is drawn as.
_HEAD_TISSUES = ("head_dark", "head_mid", "head_bright")
#: ... and those of the random regions of textured head tissue: brain-like intensities too.
_TEXTURE_TISSUES = (*_HEAD_TISSUES, "cortex", "white_matter", "csf")

#: Voxels drawn from the whole head to normalise a patch of mostly air.
_REFERENCE_SIZE = 20_000


def _class_of(label_id: int) -> int:
    if label_id in ASEG_TO_MRBRAINS13:
        return ASEG_TO_MRBRAINS13[label_id]
    return _EXTRA_BRAIN.get(label_id, 0)


def _tissue_of(label_id: int) -> str | None:
    """Contrast-profile tissue of an id; None for head tissues (drawn per sample)."""
    if label_id in (200, 201, 202):  # IBSR's grouped head tissues
        return ASEG_TO_TISSUE[label_id]
    if label_id in ASEG_TO_TISSUE:
        return ASEG_TO_TISSUE[label_id]
    extra = {25: "lesion", 57: "lesion", 30: "cortex", 62: "cortex", 72: "csf", 85: "white_matter"}
    return extra.get(label_id)


#: id -> MRBrainS13 class for every id of the label maps (unknown ids: background).
LABEL_MAP_TO_MRBRAINS13 = _class_of


@dataclass(frozen=True)
class LabelMap:
    """One subject's anatomy: compact label indices (z, y, x), RAS, 1 mm, cropped to the head.

    Attributes:
        name: file stem, e.g. ``training_seg_01``.
        index: uint8 indices into :attr:`LabelMapBank.ids`.
        brain_voxels: int32 (n, 3) voxel positions (z, y, x) inside the brain (every 3rd).
        head_voxels: int32 (n, 3) voxel positions inside the head (every 5th).
    """

    name: str
    index: np.ndarray
    brain_voxels: np.ndarray
    head_voxels: np.ndarray


class LabelMapBank:
    """Whole-head label maps in memory, sharing one table of label ids.

    Build it with :meth:`from_files` (label map files, needs SimpleITK) or :meth:`load` (a
    ``.npz`` written by :meth:`save`: numpy only, e.g. on a training machine without
    SimpleITK).

    Args:
        names: one name per map.
        arrays: integer label ids (z, y, x) per map, RAS voxel order, 1 mm.

    Raises:
        ValueError: no maps, or more than 255 distinct ids.
    """

    def __init__(self, names: Sequence[str], arrays: Sequence[np.ndarray]) -> None:
        if not arrays:
            raise ValueError("LabelMapBank: no label map files given")
        cropped = []
        for array in arrays:
            inside = np.argwhere(array > 0)
            low = np.maximum(inside.min(0) - 2, 0)
            high = inside.max(0) + 3
            cropped.append(array[low[0] : high[0], low[1] : high[1], low[2] : high[2]])
        ids = np.unique(np.concatenate([np.unique(a) for a in cropped]))
        if len(ids) > 255:
            raise ValueError(f"LabelMapBank: {len(ids)} distinct label ids; at most 255 fit")
        self.ids = ids.astype(np.int32)
        lookup = np.zeros(int(ids.max()) + 1, dtype=np.uint8)
        lookup[ids] = np.arange(len(ids), dtype=np.uint8)
        #: MRBrainS13 class per index.
        self.classes = np.array([_class_of(int(i)) for i in ids], dtype=np.uint8)
        #: realistic-profile tissue per index (None: head tissue, drawn per sample).
        self.tissues = [_tissue_of(int(i)) for i in ids]
        self.maps: list[LabelMap] = []
        for name, array in zip(names, cropped, strict=True):
            index = lookup[array]
            brain = self.classes[index] > 0
            self.maps.append(
                LabelMap(
                    name,
                    index,
                    np.argwhere(brain)[::3].astype(np.int32),
                    np.argwhere(index > 0)[::5].astype(np.int32),
                )
            )

    @classmethod
    def from_files(cls, paths: Sequence[str | Path]) -> LabelMapBank:
        """Read label maps (any format SimpleITK reads, integer ids, 1 mm), reoriented to RAS.

        Raises:
            ValueError: no paths, or a map whose spacing is not 1 mm.
        """
        import SimpleITK as sitk  # noqa: N813

        from medzoo.preprocessing import reorient

        names, arrays = [], []
        for path in paths:
            image = reorient(sitk.ReadImage(str(path), sitk.sitkInt16), "RAS")
            spacing = image.GetSpacing()
            if max(abs(s - 1.0) for s in spacing) > 0.05:
                raise ValueError(
                    f"{path}: voxel spacing {spacing} mm; the renderer needs 1 mm label maps "
                    "(resample with nearest neighbour first)"
                )
            arrays.append(sitk.GetArrayFromImage(image).astype(np.int32))
            names.append(Path(path).name.split(".")[0])
        return cls(names, arrays)

    def save(self, path: str | Path) -> None:
        """Write the maps (compact indices and the id table; RAS, cropped) to a compressed
        ``.npz`` (temporary name, then rename)."""
        path = Path(path)
        tmp = path.with_name(f".{path.stem}.tmp.npz")
        arrays = {f"map_{k}": m.index for k, m in enumerate(self.maps)}
        names = np.array([m.name for m in self.maps])
        np.savez_compressed(tmp, names=names, ids=self.ids, **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> LabelMapBank:
        """The bank :meth:`save` wrote."""
        with np.load(path) as data:
            names, ids = [str(n) for n in data["names"]], data["ids"]
            return cls(names, [ids[data[f"map_{k}"]] for k in range(len(names))])

    def __len__(self) -> int:
        return len(self.maps)


@dataclass(frozen=True)
class RandomizedConfig:
    """The ranges each sample draws from (uniformly unless said otherwise).

    Attributes:
        patch_shape: (z, y, x) voxels of a sample, 1 mm.
        channels: channel names; the first is always present, the others are optional.
        contrasts: the realistic profile of each channel (a name of
            :data:`medzoo.synth.contrasts.PROFILES`).
        random_contrast_probability: chance that a channel is a random Gaussian mixture instead
            of its realistic profile.
        optional_channel_probability: chance that each optional channel is present.
        absent_value: the value that fills an absent channel.
        brain_centre_probability: chance that the patch centres on a brain voxel (else any head
            voxel).
        air_centre_probability: chance that a patch not centred on the brain centres anywhere
            in the head's bounding box widened by half a patch on every side (mostly air;
            normalised by the whole head's intensities) instead of on a head voxel. Off by
            default, not proven: with 1/3 (10 % of all patches) the unet3d_mrbrains run's
            real-scan validation Dice fell from 0.718 to 0.651 over 750 steps, but without them
            it fell over the same batches too (training/RESULTS.md); ``medzoo.predict`` keeps
            labels out of the air by the head region instead.
        rotation_deg: maximum rotation about each axis, degrees.
        scaling: per-axis scale range.
        shear: maximum shear coefficient.
        elastic_mm: range of the displacement's standard deviation, mm.
        elastic_spacing_mm: spacing of the displacement's control points, mm.
        flip_probability: chance of a left-right mirror (a new anatomy).
        random_std: range of a random Gaussian's standard deviation (intensities in [0, 1]).
        thick_slice_probability: chance of thick slices along one random axis.
        slice_thickness_mm: their thickness range, mm.
        voxel_mm: acquired voxel size range along the other axes, mm.
        bias_std: range of the log bias field's standard deviation.
        noise_std: range of the Gaussian noise's standard deviation (relative to [0, 1]).
        gamma_std: standard deviation of the log of the gamma exponent.
        black_background_probability: chance that everything outside the head is exactly 0.
        head_texture_probability: chance that the head tissues of a sample are split into
            random regions with intensities of their own.
        head_texture_regions: range of the number of regions (the first keeps each label's own
            intensity).
        head_texture_mm: range of the spacing of the random fields whose cells are the regions,
            mm (about the regions' size).
    """

    patch_shape: tuple[int, int, int] = (96, 96, 96)
    channels: tuple[str, ...] = ("T1", "T1_IR", "T2_FLAIR")
    contrasts: tuple[str, ...] = ("T1", "T1_IR", "T2_FLAIR")
    random_contrast_probability: float = 0.6
    optional_channel_probability: float = 0.25
    absent_value: float = -1.0
    brain_centre_probability: float = 0.7
    air_centre_probability: float = 0.0
    rotation_deg: float = 15.0
    scaling: tuple[float, float] = (0.85, 1.15)
    shear: float = 0.05
    elastic_mm: tuple[float, float] = (0.0, 3.0)
    elastic_spacing_mm: float = 32.0
    flip_probability: float = 0.5
    random_std: tuple[float, float] = (0.0, 0.08)
    thick_slice_probability: float = 0.5
    slice_thickness_mm: tuple[float, float] = (1.5, 8.0)
    voxel_mm: tuple[float, float] = (0.9, 1.4)
    bias_std: tuple[float, float] = (0.0, 0.4)
    noise_std: tuple[float, float] = (0.0, 0.05)
    gamma_std: float = 0.25
    black_background_probability: float = 0.3
    head_texture_probability: float = 0.7
    head_texture_regions: tuple[int, int] = (2, 8)
    head_texture_mm: tuple[float, float] = (4.0, 24.0)

    def __post_init__(self) -> None:
        if len(self.patch_shape) != 3 or min(self.patch_shape) < 8:
            raise ValueError(
                f"RandomizedConfig.patch_shape: expected (z, y, x) of at least 8 voxels each, got "
                f"{self.patch_shape!r}"
            )
        if len(self.contrasts) != len(self.channels):
            raise ValueError(
                f"RandomizedConfig: {len(self.channels)} channels but {len(self.contrasts)} "
                "contrasts; give one realistic contrast per channel"
            )
        unknown = [c for c in self.contrasts if c not in PROFILES]
        if unknown:
            raise ValueError(
                f"RandomizedConfig.contrasts: {unknown} unknown; use names of {sorted(PROFILES)}"
            )

    def to_dict(self) -> dict:
        """JSON-able record of the configuration (for a run's record)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _rotation(angles: np.ndarray) -> np.ndarray:
    matrix = np.eye(3)
    for axis, angle in enumerate(angles):
        a, b = [k for k in range(3) if k != axis]
        r = np.eye(3)
        r[a, a] = r[b, b] = math.cos(angle)
        r[a, b], r[b, a] = -math.sin(angle), math.sin(angle)
        matrix = matrix @ r
    return matrix


def _linear_weights(n: int, count: int) -> np.ndarray:
    """(n, count) weights interpolating ``count`` control points spread over ``n`` voxels."""
    t = np.arange(n) * (count - 1) / max(n - 1, 1)
    low = np.minimum(np.floor(t).astype(int), count - 2)
    weights = np.zeros((n, count), dtype=np.float32)
    weights[np.arange(n), low] = 1.0 - (t - low)
    weights[np.arange(n), low + 1] = t - low
    return weights


def _smooth_field(
    rng: np.random.Generator, shape: Sequence[int], spacing_vox: float, std: float, count: int
) -> np.ndarray:
    """``count`` smooth random fields (count, z, y, x): Gaussian control points about every
    ``spacing_vox`` voxels, linearly interpolated (separably, one axis at a time)."""
    coarse = [max(2, math.ceil(n / spacing_vox) + 1) for n in shape]
    field = rng.standard_normal((count, *coarse)).astype(np.float32) * np.float32(std)
    for axis, (n, c) in enumerate(zip(shape, coarse, strict=True)):
        field = np.moveaxis(
            np.tensordot(_linear_weights(n, c), field, axes=(1, axis + 1)), 0, axis + 1
        )
    return np.ascontiguousarray(field)


def _decimate(
    volume: np.ndarray, axis: int, factor: float, noise: float, rng: np.random.Generator
) -> np.ndarray:
    """Sample ``volume`` every ``factor`` voxels along ``axis`` (linear), add Gaussian noise of
    ``noise`` there, and interpolate back linearly onto the original positions."""
    n = volume.shape[axis]
    count = math.ceil((n - 1) / factor) + 2
    # Coarse sample positions (fine voxel units) at a random phase, one beyond each end; values
    # beyond the volume repeat its edge.
    positions = rng.uniform(0.0, factor) - factor + np.arange(count) * factor
    clipped = np.clip(positions, 0, n - 1)
    low = np.minimum(np.floor(clipped).astype(int), n - 1)
    high = np.minimum(low + 1, n - 1)
    shape = [1] * volume.ndim
    shape[axis] = -1
    w = (clipped - low).astype(np.float32).reshape(shape)
    coarse = np.take(volume, low, axis) * (1 - w) + np.take(volume, high, axis) * w
    if noise > 0:
        coarse += rng.standard_normal(coarse.shape).astype(np.float32) * np.float32(noise)
    back = (np.arange(n) - positions[0]) / factor
    low = np.clip(np.floor(back).astype(int), 0, count - 2)
    w = np.clip(back - low, 0.0, 1.0).astype(np.float32).reshape(shape)
    return np.take(coarse, low, axis) * (1 - w) + np.take(coarse, low + 1, axis) * w


class RandomizedRenderer:
    """Draws (image, labels) training samples from a :class:`LabelMapBank`; reproducible per
    seed.

    Example::

        bank = LabelMapBank.from_files(sorted(Path("label_maps").glob("*.nii.gz")))
        renderer = RandomizedRenderer(bank, RandomizedConfig(patch_shape=(96, 96, 96)))
        image, labels = renderer.sample(seed=3)   # (96, 96, 96, 3) float32, (96, 96, 96) int32
    """

    def __init__(self, bank: LabelMapBank, config: RandomizedConfig | None = None) -> None:
        self.bank = bank
        self.config = config or RandomizedConfig()
        shape = np.asarray(self.config.patch_shape, dtype=np.float64)
        self._offsets = np.stack(
            np.meshgrid(*[np.arange(n) - (n - 1) / 2.0 for n in shape], indexing="ij")
        ).reshape(3, -1)
        self._air = bank.ids == 0
        self._head_tissue = (bank.classes == 0) & ~self._air

    def sample(
        self, seed: int | Sequence[int] | np.random.Generator, subject: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """One sample.

        Args:
            seed: the same seed gives the same sample.
            subject: index into the bank (None: drawn at random).

        Returns:
            ``(image, labels)``: float32 (z, y, x, c) in [0, 1] (``absent_value`` for absent
            channels) and int32 (z, y, x) MRBrainS13 classes 0-8.
        """
        cfg = self.config
        rng = np.random.default_rng(seed)
        r_geo, r_channels, r_air = rng.spawn(3)
        r_texture = rng.spawn(1)[0]
        if subject is None:
            subject = int(r_geo.integers(len(self.bank)))
        label_map = self.bank.maps[subject]
        index, in_air = self._place(label_map, r_geo, r_air)
        # Whole-head voxels whose intensities set an air patch's normalisation (see _normalise).
        reference = (
            label_map.index.reshape(-1)[r_air.integers(label_map.index.size, size=_REFERENCE_SIZE)]
            if in_air
            else None
        )
        labels = self.bank.classes[index].astype(np.int32)
        regions = self._head_regions(index, r_texture)
        present = [True] + [
            bool(r.random() < cfg.optional_channel_probability)
            for r in r_channels.spawn(len(cfg.channels) - 1)
        ]
        channels = []
        shared = r_channels.spawn(1)[0]
        resolution = self._resolution(shared)
        for k, (contrast, r) in enumerate(
            zip(cfg.contrasts, r_channels.spawn(len(cfg.channels)), strict=True)
        ):
            if not present[k]:
                channels.append(np.full(index.shape, cfg.absent_value, np.float32))
                continue
            channels.append(self._channel(index, contrast, resolution, r, reference, regions))
        return np.stack(channels, axis=-1), labels

    # ------------------------------------------------------------------------ geometry

    def _place(
        self, label_map: LabelMap, rng: np.random.Generator, air_rng: np.random.Generator
    ) -> tuple[np.ndarray, bool]:
        """Label indices of the patch, and whether it is centred in the air box (the map's box
        widened by half a patch; beyond the map is air)."""
        cfg = self.config
        shape = cfg.patch_shape
        in_air = False
        if rng.random() < cfg.brain_centre_probability:
            centre = label_map.brain_voxels[rng.integers(len(label_map.brain_voxels))]
        elif air_rng.random() < cfg.air_centre_probability:
            in_air = True
            half = np.asarray(shape, dtype=np.float64) / 2.0
            centre = air_rng.uniform(-half, np.asarray(label_map.index.shape) - 1 + half)
        else:
            centre = label_map.head_voxels[rng.integers(len(label_map.head_voxels))]
        centre = np.asarray(centre, dtype=np.float64)
        angles = np.deg2rad(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg, 3))
        shear = np.eye(3)
        shear[np.triu_indices(3, 1)] = rng.uniform(-cfg.shear, cfg.shear, 3)
        matrix = _rotation(angles) @ shear @ np.diag(1.0 / rng.uniform(*cfg.scaling, 3))
        coords = matrix @ self._offsets + centre[:, None]
        elastic = rng.uniform(*cfg.elastic_mm)
        if elastic > 0:
            field = _smooth_field(rng, shape, cfg.elastic_spacing_mm, elastic, 3)
            coords += field.reshape(3, -1)
        source = label_map.index
        flat = np.zeros(coords.shape[1], dtype=np.int64)
        valid = np.ones(coords.shape[1], dtype=bool)
        for k in range(3):
            position = np.rint(coords[k]).astype(np.int64)
            valid &= (position >= 0) & (position < source.shape[k])
            flat = flat * source.shape[k] + np.clip(position, 0, source.shape[k] - 1)
        index = np.where(valid, source.reshape(-1)[flat], 0).reshape(shape)
        if rng.random() < cfg.flip_probability:
            index = index[:, :, ::-1]
        return np.ascontiguousarray(index), in_air

    def _resolution(self, rng: np.random.Generator) -> np.ndarray:
        """Acquired voxel size (z, y, x) in mm, shared by the channels of a sample."""
        cfg = self.config
        voxel = rng.uniform(*cfg.voxel_mm, 3)
        if rng.random() < cfg.thick_slice_probability:
            voxel[rng.integers(3)] = rng.uniform(*cfg.slice_thickness_mm)
        return voxel

    def _head_regions(self, index: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
        """int8 (z, y, x): the random region of every head-tissue voxel of the patch (-1
        elsewhere), or None when this sample is not textured."""
        cfg = self.config
        if rng.random() >= cfg.head_texture_probability:
            return None
        head = self._head_tissue[index]
        if not head.any():
            return None
        low, high = cfg.head_texture_regions
        count = int(rng.integers(low, high + 1))
        fields = _smooth_field(rng, index.shape, rng.uniform(*cfg.head_texture_mm), 1.0, count)
        regions = np.argmax(fields, axis=0).astype(np.int8)
        regions[~head] = -1
        return regions

    # ----------------------------------------------------------------------- intensities

    def _means_stds(
        self, contrast: str, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, bool, bool]:
        """Per-index means and standard deviations, whether the air is exactly black, and
        whether the contrast is a random mixture."""
        cfg = self.config
        n = len(self.bank.ids)
        mixture = bool(rng.random() < cfg.random_contrast_probability)
        if mixture:
            means, stds = self._random_gaussians(n, rng)
        else:
            tissues = [
                t if t is not None else _HEAD_TISSUES[rng.integers(3)] for t in self.bank.tissues
            ]
            means, stds = self._profile_gaussians(contrast, tissues, rng)
        black = bool(rng.random() < cfg.black_background_probability)
        means[self._air] = 0.0 if black else rng.uniform(0.0, 0.1)
        stds[self._air] = 0.0 if black else rng.uniform(0.0, 0.03)
        return means.astype(np.float32), stds.astype(np.float32), black, mixture

    def _random_gaussians(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` random Gaussians (means in [0, 1])."""
        return rng.uniform(0.0, 1.0, n), rng.uniform(*self.config.random_std, n)

    @staticmethod
    def _profile_gaussians(
        contrast: str, tissues: Sequence[str], rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """The realistic Gaussians of ``tissues`` in ``contrast``, means jittered by 10 %."""
        profile = PROFILES[contrast]
        means = np.array([profile[t][0] for t in tissues]) * rng.uniform(0.9, 1.1, len(tissues))
        stds = np.array([profile[t][1] for t in tissues]) * rng.uniform(0.5, 1.5)
        return means, stds

    def _channel(
        self,
        index: np.ndarray,
        contrast: str,
        voxel_mm: np.ndarray,
        rng: np.random.Generator,
        reference: np.ndarray | None = None,
        regions: np.ndarray | None = None,
    ) -> np.ndarray:
        cfg = self.config
        means, stds, black, mixture = self._means_stds(contrast, rng)
        image = means[index] + stds[index] * rng.standard_normal(index.shape, dtype=np.float32)
        if regions is not None:
            image = self._texture(image, regions, contrast, mixture, rng)
        bias_std = rng.uniform(*cfg.bias_std)
        if bias_std > 0:
            image *= np.exp(_smooth_field(rng, index.shape, 48.0, bias_std, 1)[0])
        sigmas = _FWHM_TO_SIGMA * np.sqrt(np.maximum(voxel_mm**2 - 1.0, 0.0))
        image = ndimage.gaussian_filter(image, sigmas * rng.uniform(0.8, 1.2, 3), truncate=3.0)
        noise = rng.uniform(*cfg.noise_std)
        thick = [k for k in range(3) if voxel_mm[k] > 1.5]
        if thick:
            for k in thick:
                image = _decimate(image, k, float(voxel_mm[k]), noise if k == thick[-1] else 0, rng)
        elif noise > 0:
            image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(noise)
        image = np.abs(image)
        if black:
            image[self._air[index]] = 0.0
        if reference is not None:
            reference = np.abs(
                means[reference] + stds[reference] * rng.standard_normal(reference.shape)
            )
        return self._normalise(image, rng, reference)

    def _texture(
        self,
        image: np.ndarray,
        regions: np.ndarray,
        contrast: str,
        mixture: bool,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Head-tissue regions 1, 2, ... of ``regions`` drawn from Gaussians of their own (random
        for a mixture contrast, else realistic head, grey-matter, white-matter or CSF ones);
        region 0 keeps its labels' intensities."""
        count = int(regions.max()) + 1
        if mixture:
            means, stds = self._random_gaussians(count, rng)
        else:
            tissues = [_TEXTURE_TISSUES[k] for k in rng.integers(len(_TEXTURE_TISSUES), size=count)]
            means, stds = self._profile_gaussians(contrast, tissues, rng)
        for k in range(1, count):
            inside = regions == k
            image[inside] = means[k] + stds[k] * rng.standard_normal(
                int(inside.sum()), dtype=np.float32
            )
        return image

    def _normalise(
        self, image: np.ndarray, rng: np.random.Generator, reference: np.ndarray | None = None
    ) -> np.ndarray:
        """Clip to the 0.5 / 99.5 percentiles of the non-zero voxels of ``reference`` (whole-head
        intensities; None: the image itself), scale to [0, 1], apply a random gamma."""
        values = image if reference is None else reference
        nonzero = values[values > 0]
        if nonzero.size == 0:
            return image.astype(np.float32)
        low, high = np.percentile(nonzero, (0.5, 99.5))
        scaled = np.clip((image - low) / max(high - low, 1e-6), 0.0, 1.0)
        scaled[image == 0] = 0.0
        gamma = math.exp(rng.normal(0.0, self.config.gamma_std))
        return np.power(scaled, gamma, dtype=np.float32)
