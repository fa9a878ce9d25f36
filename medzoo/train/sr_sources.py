"""Super-resolution training pairs from REAL 1 mm scans (and, mixed in, synthetic heads).

Super-resolution needs no labels: any real 1 mm T1 is a training pair once it is degraded the
way a scanner acquires a coarse scan (:func:`medzoo.acquisition.acquire_array`). Every
training example is drawn afresh (:class:`SRPairBatches`): a random crop of a random volume, a
random flip / axis permutation, random intensity changes (gamma, a smooth multiplicative bias,
a global scale), then a random acquisition around the model's factors (block average or a
Gaussian slice profile of FWHM 0.85-1.25 slice thicknesses per axis, Rician noise of 0-3 % in
half the draws). The coarse input is clipped to [0, 1] as :func:`medzoo.predict` clips a scan
after its percentile normalisation; the fine target is not clipped.

Intensities: each volume is normalised once as :func:`medzoo.predict` would normalise its
block-averaged coarse scan (the spec's normalisation fitted on the 4 mm block average), with
the linear map only (no clip), so training and inference see the same units.

Validation and test cases are whole held-out REAL 1 mm scans of a reference folder
(``cases.json``, :mod:`medzoo.train.reference`), block-averaged by
:func:`medzoo.acquisition.acquire` and run through :func:`medzoo.predict`; the reference's
brain mask (tissues > 0) gives the within-brain scores (:mod:`medzoo.train.sr_eval`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk  # noqa: N813

from medzoo.acquisition import acquire, acquire_array, covered_region
from medzoo.data import Subject, SubjectData
from medzoo.io import read_image
from medzoo.normalization import fit_normalization
from medzoo.preprocessing import to_model_space
from medzoo.registry import ModelSpec
from medzoo.train.sources import Case, Source, _sr_factors, train_spacing

__all__ = ["SR_METRICS", "DegradationConfig", "RealSRSource", "SRPairBatches"]

logger = logging.getLogger(__name__)

#: Validation / test metrics of the real-scan super-resolution sources (medzoo.train.sr_eval).
SR_METRICS = (
    "psnr",
    "psnr_bspline",
    "psnr_trilinear",
    "ssim",
    "ssim_bspline",
    "ssim_trilinear",
    "brain_psnr",
    "brain_psnr_bspline",
    "brain_psnr_trilinear",
    "brain_ssim",
    "brain_ssim_bspline",
    "brain_ssim_trilinear",
)


class DegradationConfig:
    """The random draws of one training pair (see the module doc for what each does).

    Attributes:
        block_probability: chance of a block-average profile (else Gaussian).
        fwhm_range: Gaussian FWHM range in slice thicknesses, drawn per axis.
        noise_probability: chance of adding Rician noise.
        noise_range: its relative standard deviation range (of the normalised 99.5th pct).
        gamma_range: gamma range (log-uniform) applied to normalised intensities.
        bias_amplitude: largest relative change of the smooth multiplicative bias over a crop.
        scale_range: global intensity scale range.
        margin: fine voxels cut around a crop so the Gaussian sees real neighbours (a multiple
            of every factor).
    """

    def __init__(
        self,
        block_probability: float = 0.6,
        fwhm_range: tuple[float, float] = (0.85, 1.25),
        noise_probability: float = 0.5,
        noise_range: tuple[float, float] = (0.0, 0.03),
        gamma_range: tuple[float, float] = (0.75, 1.35),
        bias_amplitude: float = 0.12,
        scale_range: tuple[float, float] = (0.9, 1.1),
        margin: int = 8,
    ) -> None:
        self.block_probability = float(block_probability)
        self.fwhm_range = tuple(float(v) for v in fwhm_range)
        self.noise_probability = float(noise_probability)
        self.noise_range = tuple(float(v) for v in noise_range)
        self.gamma_range = tuple(float(v) for v in gamma_range)
        self.bias_amplitude = float(bias_amplitude)
        self.scale_range = tuple(float(v) for v in scale_range)
        self.margin = int(margin)

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


class _Volume:
    """One 1 mm volume in normalised units (unclipped), with voxels to centre crops on."""

    def __init__(self, name: str, array: np.ndarray, factors: Sequence[int], spec: ModelSpec):
        coarse = acquire_array(array, factors, "block")
        mapping = fit_normalization(coarse, spec.input.normalization, spec.input.channels[0])
        self.name = name
        self.array = (array * np.float32(mapping.scale) + np.float32(mapping.offset)).astype(
            np.float32
        )
        inside = np.flatnonzero(self.array.ravel() > 0.1)
        rng = np.random.default_rng(0)
        self.inside = (
            rng.choice(inside, min(inside.size, 200_000), replace=False) if inside.size else inside
        )


def _crop(array: np.ndarray, start: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """``array[start : start + size]`` per axis, zero outside the array."""
    out = np.zeros(tuple(size), np.float32)
    src, dst = [], []
    for s, n, limit in zip(start, size, array.shape, strict=True):
        lo, hi = max(s, 0), min(s + n, limit)
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - s, hi - s))
    out[tuple(dst)] = array[tuple(src)]
    return out


class SRPairBatches:
    """Training batches of (coarse, fine) pairs drawn afresh: batch ``index`` of data epoch
    ``epoch`` is the same for the same seed (a resumed run continues the sequence).

    Each batch is ``(coarse, fine)``: float32 (n, pz, py, px, 1) and (n, pz*fz, py*fy, px*fx, 1),
    ready for the network (:meth:`to_model` passes them through).

    Args:
        draw: ``draw(rng, synthetic)`` -> a (name, volume) to crop from.
        factors: (z, y, x) upsampling factors.
        patch: (z, y, x) coarse input size in voxels.
        synthetic_fraction: share of examples taken from synthetic volumes.
    """

    def __init__(
        self,
        source: RealSRSource,
        batch_size: int,
        length: int,
        seed: int,
    ) -> None:
        self.source, self.batch_size, self.length, self.seed = source, batch_size, length, seed

    def __len__(self) -> int:
        return self.length

    @staticmethod
    def to_model(batch: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return batch

    def batch(self, index: int, epoch: int = 0) -> tuple[np.ndarray, np.ndarray]:
        pairs = [
            self.source.pair(np.random.default_rng([self.seed, epoch, index, k]))
            for k in range(self.batch_size)
        ]
        coarse = np.stack([c for c, _ in pairs])[..., None]
        fine = np.stack([f for _, f in pairs])[..., None]
        return coarse, fine


class RealSRSource(Source):
    """Super-resolution pairs drawn from real 1 mm scans (``--data real``), optionally mixed
    with synthetic heads (``--data mixed``), validated and tested on held-out REAL scans.

    Args:
        spec: a super-resolution spec (1 channel).
        data_dir: a folder of real fine-grid scans (``*.nii``, ``*.nii.gz``, ``*.nrrd``,
            ``*.mha``; symlinks are fine); each is resampled to the spec's output spacing if it
            is not on it already.
        reference_dir: real held-out scans (``cases.json``, :mod:`medzoo.train.reference`);
            only those on the output spacing (1 mm) are used. A training file with the same
            content (sha256) or name as one of them is refused.
        synthetic_fraction: share of training examples from synthetic heads (0 for ``real``).
        synthetic_subjects: distinct synthetic heads (rendered once each, when first drawn).
        seed: seed of every draw.
        patch: (z, y, x) coarse input size in voxels (default: the spec's patch size).
        degradation: the random draws (default :class:`DegradationConfig`).
    """

    metric_names = SR_METRICS

    def __init__(
        self,
        spec: ModelSpec,
        data_dir: str | Path | None,
        *,
        reference_dir: str | Path,
        synthetic_fraction: float = 0.0,
        synthetic_subjects: int = 16,
        seed: int = 0,
        patch: Sequence[int] | None = None,
        degradation: DegradationConfig | None = None,
    ) -> None:
        super().__init__(spec)
        from medzoo.hub._files import sha256_file
        from medzoo.train.reference import read_references

        if spec.task != "super_resolution" or len(spec.input.channels) != 1:
            raise ValueError(
                f"--data real | mixed makes super-resolution pairs; {spec.name} is a "
                f"{spec.task} model with {len(spec.input.channels)} channel(s)"
            )
        if not 0.0 <= synthetic_fraction <= 1.0:
            raise ValueError(f"synthetic_fraction must be in [0, 1], got {synthetic_fraction!r}")
        self.name = "mixed" if synthetic_fraction > 0 else "real"
        self.factors = _sr_factors(spec)
        self.fine_spacing = train_spacing(spec)
        self.patch = tuple(int(p) for p in (patch or spec.input.patch_size))
        self.degradation = degradation or DegradationConfig()
        if any(self.degradation.margin % f for f in self.factors):
            raise ValueError(
                f"margin {self.degradation.margin} must be a multiple of {self.factors}"
            )
        self.seed = int(seed)
        self.synthetic_fraction = float(synthetic_fraction)
        self.reference_dir = Path(reference_dir)
        self.references = [
            r
            for r in read_references(self.reference_dir)
            if np.allclose(read_image(r.scan).GetSpacing(), self.fine_spacing, rtol=0.02)
        ]
        held = {sha256_file(r.scan): r.name for r in self.references}
        held_names = {r.name for r in self.references} | {r.scan.name for r in self.references}

        self.files: list[Path] = []
        if synthetic_fraction < 1.0:
            if data_dir is None:
                raise ValueError(
                    f"--data {self.name} needs --data-dir, a folder of real 1 mm scans (e.g. "
                    "symlinks to the ICBM 2009c T1 template; see training/README.md)"
                )
            patterns = ("*.nii", "*.nii.gz", "*.nrrd", "*.mha")
            self.files = sorted({p for g in patterns for p in Path(data_dir).glob(g)})
            if not self.files:
                raise FileNotFoundError(
                    f"{data_dir} holds no scans (*.nii, *.nii.gz, *.nrrd, *.mha); point "
                    "--data-dir at a folder of real 1 mm T1 scans"
                )
        self.hashes = {}
        for path in self.files:
            digest = sha256_file(path)
            stem = path.name.split(".")[0]
            if digest in held or stem in held_names or path.name in held_names:
                raise ValueError(
                    f"training scan {path} is the held-out reference "
                    f"{held.get(digest, stem)!r}: persons used for validation or test must not "
                    "be trained on; remove it from --data-dir"
                )
            self.hashes[path.name] = digest
        self._real = [self._load(path) for path in self.files]
        self._synthetic: dict[int, _Volume] = {}
        self._synthetic_count = int(synthetic_subjects)
        self._synth_source = None
        self._lock = threading.Lock()
        if synthetic_fraction > 0:
            from medzoo.train.sources import SyntheticSource

            self._synth_source = SyntheticSource(spec, subjects=synthetic_subjects, seed=seed)

    def _load(self, path: Path) -> _Volume:
        image = sitk.Cast(read_image(path), sitk.sitkFloat32)
        if image.GetNumberOfComponentsPerPixel() != 1:
            raise ValueError(f"{path}: a super-resolution training scan must be a scalar image")
        if not np.allclose(image.GetSpacing(), self.fine_spacing, rtol=0.02):
            logger.info(
                "%s: resampling %s mm to %s mm", path.name, image.GetSpacing(), self.fine_spacing
            )
            image, _ = to_model_space(image, spacing=self.fine_spacing)
        array = sitk.GetArrayFromImage(image).astype(np.float32)
        return _Volume(path.name, array, self.factors, self.spec)

    def _synthetic_volume(self, index: int) -> _Volume:
        with self._lock:
            if index not in self._synthetic:
                subject = self._synth_source.subjects()[index]
                data: SubjectData = self._synth_source.read(subject)
                self._synthetic[index] = _Volume(
                    subject.name, data.image[..., 0].astype(np.float32), self.factors, self.spec
                )
            return self._synthetic[index]

    # ---------------------------------------------------------------------------------------

    def pair(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One (coarse (pz, py, px), fine target) pair, float32, drawn with ``rng``."""
        cfg = self.degradation
        if self._real and rng.random() >= self.synthetic_fraction:
            volume = self._real[int(rng.integers(len(self._real)))]
        else:
            volume = self._synthetic_volume(int(rng.integers(self._synthetic_count)))
        fine_size = tuple(p * f for p, f in zip(self.patch, self.factors, strict=True))
        m = cfg.margin
        size = tuple(n + 2 * m for n in fine_size)
        if volume.inside.size and rng.random() < 0.9:
            centre = np.unravel_index(int(rng.choice(volume.inside)), volume.array.shape)
            centre = [int(c + rng.integers(-8, 9)) for c in centre]
        else:
            centre = [int(rng.integers(0, n)) for n in volume.array.shape]
        start = [c - s // 2 for c, s in zip(centre, size, strict=True)]
        crop = _crop(volume.array, start, size)
        # Orientation: SR is local, so every flip and axis order is a plausible scan.
        if all(f == self.factors[0] for f in self.factors) and len(set(size)) == 1:
            crop = np.transpose(crop, rng.permutation(3))
        for axis in range(3):
            if rng.random() < 0.5:
                crop = np.flip(crop, axis)
        crop = np.ascontiguousarray(crop)
        # Intensity variety.
        gamma = float(np.exp(rng.uniform(*np.log(cfg.gamma_range))))
        crop = np.maximum(crop, 0.0) ** np.float32(gamma)
        gz, gy, gx = (np.linspace(-1, 1, n, dtype=np.float32) for n in size)
        a, b, c, d = (np.float32(v) for v in rng.uniform(-1, 1, 4))
        log_bias = (a * gz)[:, None, None] + (b * gy)[None, :, None] + c * gx
        log_bias = log_bias + d * gz[:, None, None] * gy[None, :, None]
        bias = np.exp(np.float32(cfg.bias_amplitude / 4) * log_bias)  # |log_bias| <= 4
        crop = (crop * bias * np.float32(rng.uniform(*cfg.scale_range))).astype(np.float32)
        # Acquisition.
        if rng.random() < cfg.block_probability:
            profile, fwhm = "block", None
        else:
            profile = "gaussian"
            fwhm = [f * rng.uniform(*cfg.fwhm_range) for f in self.factors]
        noise = rng.uniform(*cfg.noise_range) if rng.random() < cfg.noise_probability else 0.0
        coarse = acquire_array(
            crop,
            self.factors,
            profile,
            fwhm_voxels=fwhm,
            noise=noise,
            noise_reference=1.0,
            seed=rng,
        )
        c = [m // f for f in self.factors]
        coarse = coarse[
            c[0] : c[0] + self.patch[0], c[1] : c[1] + self.patch[1], c[2] : c[2] + self.patch[2]
        ]
        fine = crop[m : m + fine_size[0], m : m + fine_size[1], m : m + fine_size[2]]
        low, high = self.spec.input.value_range
        return np.clip(coarse, low, high).astype(np.float32), np.ascontiguousarray(fine)

    # ---------------------------------------------------------------------------------------

    def subjects(self) -> list[Subject]:
        names = [f.name.split(".")[0] for f in self.files]
        names += [
            f"synthetic-{i:03d}" for i in range(self._synthetic_count if self._synth_source else 0)
        ]
        return [Subject(channels=(), name=n) for n in names]

    def read(self, subject: Subject) -> SubjectData:
        raise TypeError("RealSRSource draws every training pair afresh; use batches(), not read()")

    def batches(self, batch_size: int, steps_per_epoch: int) -> SRPairBatches:
        return SRPairBatches(self, batch_size, steps_per_epoch, self.seed)

    def cases(self, split: str, count: int) -> list[Case]:
        from medzoo.train.reference import cases_file

        f_xyz = self.factors[::-1]
        channel = self.spec.input.channels[0]
        cases = []
        for ref in [r for r in self.references if r.split == split][:count]:
            scan = sitk.Cast(read_image(ref.scan), sitk.sitkFloat32)
            truth = covered_region(scan, f_xyz)
            brain = covered_region(sitk.Cast(ref.tissues > 0, sitk.sitkUInt8), f_xyz)
            inputs = {channel: acquire(scan, f_xyz, "block")}
            cases.append(Case(ref.name, inputs, reference=truth, tissues=brain))
        if not cases:
            raise ValueError(
                f"{cases_file(self.reference_dir)} lists no {split} scan on a "
                f"{self.fine_spacing} mm grid; add one (see medzoo.train.reference)"
            )
        return cases

    def describe_test(self, cases: Sequence[Case]) -> str:
        names = ", ".join(case.name for case in cases)
        return (
            f"{len(cases)} REAL 1 mm scan(s) never used for training or checkpoint selection "
            f"({names}), block-averaged to {self.spec.input.spacing_mm} mm by "
            "medzoo.acquisition.acquire and run whole through medzoo.predict; scored against "
            "the 1 mm scan after the truth's percentile normalisation, whole image and inside "
            "the reference brain mask (brain_*); *_bspline / *_trilinear: SimpleITK "
            "interpolation of the same input"
        )

    def provenance(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "name": f"real 1 mm scans ({self.name})",
            "generator": "medzoo.train.sr_sources (random crops, flips, intensity changes, "
            "medzoo.acquisition degradations drawn afresh for every pair)",
            "real_scans_sha256": self.hashes,
            "data_dir": str(self.files[0].parent) if self.files else None,
            "degradation": self.degradation.to_dict(),
            "synthetic_fraction": self.synthetic_fraction,
            "seed": self.seed,
            "real_reference_scans": {
                r.name: {"split": r.split, "scan": r.scan.name, "note": r.note}
                for r in self.references
            },
        }
        if self._synth_source is not None:
            record["synthetic"] = self._synth_source.provenance()
        return record
