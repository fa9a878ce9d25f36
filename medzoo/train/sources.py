"""Where training scans come from: synthetic heads (the default) or a real dataset on disk.

A source gives the trainer two things:

- training subjects (:class:`medzoo.data.Subject`) and a read function that returns their
  arrays on their native grid (:class:`medzoo.data.SubjectData`, image (z, y, x, c));
- held-out :class:`Case` s: scans as SimpleITK images on their native grid with their truth,
  which validation and the final test run through :func:`medzoo.predict` exactly as a user's
  scans would go (so the metrics measure the whole pipeline, resampling included).

Sources: :class:`SyntheticSource` (``medzoo.synth``; no download), :class:`Mrbrains13Source`
(the MRBrainS13 challenge folders) and :class:`IxiSource` (IXI prepared by
``training/datasets/ixi.py``). Targets: ``age`` in years, ``sex`` 0 = female, 1 = male.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk  # noqa: N813

from medzoo._checks import positive_mm
from medzoo.assets import asset
from medzoo.data import Subject, SubjectData, read_subject
from medzoo.geometry import Geometry
from medzoo.io import array_to_image, read_image, read_label
from medzoo.registry import ModelSpec
from medzoo.synth import SynthConfig, Synthesizer, make_cohort
from medzoo.tasks import get_task

__all__ = [
    "SOURCES",
    "Case",
    "IxiSource",
    "LabelMapSource",
    "Mrbrains13Source",
    "RandomizedBatches",
    "Source",
    "SyntheticSource",
    "downsample",
    "make_source",
    "reference_cases",
    "train_spacing",
]

SOURCES = ("synthetic", "labelmaps", "ixi", "mrbrains13", "real", "mixed")


@dataclass(frozen=True)
class Case:
    """One held-out scan with its truth.

    Attributes:
        name: for logs and reports.
        inputs: channel name -> scan on its native grid (as :func:`medzoo.predict` takes it).
        label: segmentation truth on the first channel's grid (label ids), else None.
        targets: ``age`` (years) and ``sex`` (0 female, 1 male) where known.
        reference: super-resolution truth on the fine grid, else None.
        tissues: a classical reference tissue segmentation of a real scan (0 outside the brain,
            1 CSF, 2 GM, 3 WM) on the first channel's grid, scored by
            :func:`medzoo.train.reference.score_tissues`; else None.
        exclude: 1 where ``tissues`` is not scored (cerebellum, brainstem), else None.
    """

    name: str
    inputs: dict[str, sitk.Image]
    label: sitk.Image | None = None
    targets: dict[str, float] = field(default_factory=dict)
    reference: sitk.Image | None = None
    tissues: sitk.Image | None = None
    exclude: sitk.Image | None = None


def reference_cases(spec: ModelSpec, references: Sequence) -> list[Case]:
    """A :class:`Case` per real reference scan (:class:`medzoo.train.reference.ReferenceScan`):
    the scan as the spec's first channel (T1), scored against its reference tissues."""
    channel = spec.input.channels[0]
    return [
        Case(r.name, {channel: read_image(r.scan)}, tissues=r.tissues, exclude=r.exclude)
        for r in references
    ]


class Source(ABC):
    """Training subjects, their read function, and held-out cases for one model spec.

    ``selection`` (metric name, higher is better) overrides the task's default checkpoint
    selection, and ``metric_names`` its logged validation metrics, where a source's cases are
    scored differently (real scans against reference tissues).
    """

    name: str
    selection: tuple[str, bool] | None = None
    metric_names: tuple[str, ...] | None = None

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    @abstractmethod
    def subjects(self) -> list[Subject]:
        """The training subjects."""

    def read(self, subject: Subject) -> SubjectData:
        """A subject's arrays on its native grid (default: its files)."""
        return read_subject(subject)

    def describe_test(self, cases: Sequence[Case]) -> str:
        """What the test metrics of a published preset were measured on (its model card)."""
        return (
            f"{len(cases)} held-out {self.name} test case(s) (never used for training or "
            "checkpoint selection), whole scans through medzoo.predict"
        )

    def batches(self, batch_size: int, steps_per_epoch: int) -> Any | None:
        """Ready training batches (an object with ``len()`` and ``batch(index, epoch)``), or
        None (the default): the trainer then cuts patches or volumes from :meth:`subjects`."""
        return None

    @abstractmethod
    def cases(self, split: str, count: int) -> list[Case]:
        """Up to ``count`` held-out cases of ``split`` ("validation" or "test")."""

    @abstractmethod
    def provenance(self) -> dict[str, Any]:
        """The ``training_data`` record of a published preset."""


def downsample(image: sitk.Image, factors: Sequence[int]) -> sitk.Image:
    """Block average by integer ``factors`` (z, y, x): a coarse acquisition of a fine image.

    Each coarse voxel is the mean of the fine voxels it covers, so both grids share their outer
    voxel corners (the half-voxel convention of :mod:`medzoo.layers.upsampling`). Sizes must be
    multiples of the factors.
    """
    array = sitk.GetArrayViewFromImage(image).astype(np.float32)
    fz, fy, fx = (int(f) for f in factors)
    z, y, x = array.shape
    if z % fz or y % fy or x % fx:
        raise ValueError(
            f"downsample: size (z, y, x) = {array.shape} is not a multiple of {tuple(factors)}"
        )
    blocks = array.reshape(z // fz, fz, y // fy, fy, x // fx, fx).mean(axis=(1, 3, 5))
    coarse = Geometry.from_image(image).coarsened((fz, fy, fx))
    return array_to_image(blocks.astype(np.float32), coarse)


# --------------------------------------------------------------------------------------------
# Synthetic
# --------------------------------------------------------------------------------------------


class SyntheticSource(Source):
    """Synthetic heads from :mod:`medzoo.synth`, one anatomy per subject, seeded.

    Training subjects are rendered on the model's grid (spacing ``spec.input.spacing_mm``; for
    super-resolution the fine output grid) over ``fov_mm``, in the contrasts the spec's channels
    name, with the engine's random acquisition (resolution, slice thickness, bias, noise).
    Subject ``i`` of training, validation or test is drawn from ``default_rng([seed, split, i])``
    and a cohort aged 20-86 years, half of them men.

    Args:
        spec: the model's spec.
        subjects: number of distinct training subjects (rendered once each and cached by the
            data pipeline; augmentation varies them further).
        seed: seed of everything drawn.
        fov_mm: rendered field of view (x, y, z) in mm (default: a head, or a brain for
            segmentation and super-resolution).
    """

    name = "synthetic"

    def __init__(
        self,
        spec: ModelSpec,
        *,
        subjects: int = 64,
        seed: int = 0,
        fov_mm: Sequence[float] | None = None,
    ) -> None:
        super().__init__(spec)
        if int(subjects) != subjects or subjects < 1:
            raise ValueError(f"subjects must be a positive integer, got {subjects!r}")
        self.count = int(subjects)
        self.seed = int(seed)
        self.fov_mm = positive_mm(fov_mm or get_task(spec).fov_mm, "fov_mm")
        self.contrasts = tuple(spec.input.channels)
        self._cohorts: dict[int, list] = {}
        self._train_synth = self._synthesizer(train_spacing(spec))
        self._by_name = {
            f"synthetic-{self.seed}-{i:05d}": (i, person)
            for i, person in enumerate(self._cohort(0, self.count))
        }

    def _synthesizer(
        self, spacing: Sequence[float], multiple: Sequence[int] = (1, 1, 1)
    ) -> Synthesizer:
        """A synthesizer over ``fov_mm`` on ``spacing`` (x, y, z), the shape (z, y, x) rounded
        up to ``multiple``."""
        shape = tuple(
            int(math.ceil(self.fov_mm[2 - k] / spacing[2 - k] / multiple[k]) * multiple[k])
            for k in range(3)
        )
        config = SynthConfig(
            contrasts=self.contrasts, output_shape=shape, output_spacing=tuple(spacing)
        )
        return Synthesizer(config)

    def _cohort(self, split: int, count: int) -> list:
        if split not in self._cohorts or len(self._cohorts[split]) < count:
            self._cohorts[split] = make_cohort(count, seed=self.seed * 10 + split)
        return self._cohorts[split][:count]

    def subjects(self) -> list[Subject]:
        return [
            Subject(channels=(), targets=_targets(person), name=name)
            for name, (_, person) in self._by_name.items()
        ]

    def read(self, subject: Subject) -> SubjectData:
        index, person = self._by_name[subject.name]
        sample = self._train_synth.sample(
            seed=np.random.default_rng([self.seed, 0, index]), subject=person
        )
        return SubjectData(sample.image, sample.labels, sample.geometry)

    def cases(self, split: str, count: int) -> list[Case]:
        code = {"validation": 1, "test": 2}[split]
        task = get_task(self.spec)
        spacing, multiple = task.case_grid(self.spec)
        synth = self._synthesizer(spacing, multiple=multiple)
        cases = []
        for i, person in enumerate(self._cohort(code, count)):
            sample = synth.sample(seed=np.random.default_rng([self.seed, code, i]), subject=person)
            channels = {
                name: array_to_image(sample.image[..., k], sample.geometry)
                for k, name in enumerate(self.contrasts)
            }
            label = array_to_image(sample.labels.astype(np.uint8), sample.geometry)
            name = f"synthetic-{split}-{i:03d}"
            cases.append(task.synthetic_case(self.spec, name, channels, label, _targets(person)))
        return cases

    def provenance(self) -> dict[str, Any]:
        return {
            "name": "medzoo synthetic heads",
            "generator": "medzoo.synth (label maps -> multi-contrast scans)",
            "anatomy": "IBSR-derived aseg label map (CAT12/deepmriprep), see medzoo/assets/atlas",
            "subjects": self.count,
            "seed": self.seed,
            "contrasts": list(self.contrasts),
            "field_of_view_mm": list(self.fov_mm),
        }


# --------------------------------------------------------------------------------------------
# Domain-randomised scans from whole-head label maps, validated on real scans
# --------------------------------------------------------------------------------------------


class RandomizedBatches:
    """Training batches drawn afresh from label maps: batch ``index`` of data epoch ``epoch``
    is the same for the same seed (so a resumed run continues the sequence), and no two
    batches share a contrast, geometry or acquisition draw.

    Each batch is ``(image, labels)``: float32 (n, z, y, x, c) and int32 (n, z, y, x).
    """

    def __init__(
        self, renderer: Any, subjects: Sequence[int], batch_size: int, length: int, seed: int
    ) -> None:
        self.renderer, self.subjects = renderer, list(subjects)
        self.batch_size, self.length, self.seed = batch_size, length, seed

    def __len__(self) -> int:
        return self.length

    def batch(self, index: int, epoch: int = 0) -> tuple[np.ndarray, np.ndarray]:
        images, labels = [], []
        for k in range(self.batch_size):
            rng = np.random.default_rng([self.seed, epoch, index, k])
            subject = self.subjects[int(rng.integers(len(self.subjects)))]
            image, label = self.renderer.sample(rng, subject=subject)
            images.append(image)
            labels.append(label)
        return np.stack(images), np.stack(labels)


class LabelMapSource(Source):
    """Segmentation training on domain-randomised scans rendered from whole-head label maps
    (:mod:`medzoo.synth.randomized`), validated and tested on REAL scans against classical
    reference tissue segmentations (:mod:`medzoo.train.reference`).

    Args:
        spec: a segmentation spec with 1 mm isotropic input spacing.
        data_dir: a folder of 1 mm label maps (``*.nii.gz``; e.g. SynthSeg's 20 whole-head
            training label maps); ``include_ibsr`` adds medzoo's bundled IBSR head atlas.
        reference_dir: the real reference scans (a ``cases.json`` folder).
        holdout: label map names (file stems) never rendered for training.
        seed: seed of every draw.
        patch: (z, y, x) voxels of a training sample (default: the spec's patch size).
    """

    name = "labelmaps"
    selection = ("dice_tissues", True)
    metric_names = ("dice_tissues", "dice_gm", "dice_wm", "dice_csf", "outside_brain_ml")

    def __init__(
        self,
        spec: ModelSpec,
        data_dir: str | Path,
        *,
        reference_dir: str | Path,
        holdout: Sequence[str] = ("training_seg_19", "training_seg_20"),
        include_ibsr: bool = True,
        seed: int = 0,
        patch: Sequence[int] | None = None,
    ) -> None:
        super().__init__(spec)
        from medzoo.hub._files import sha256_file
        from medzoo.synth.randomized import LabelMapBank, RandomizedConfig, RandomizedRenderer

        if spec.task != "segmentation" or any(abs(s - 1.0) > 1e-6 for s in spec.input.spacing_mm):
            raise ValueError(
                f"--data labelmaps renders 1 mm segmentation samples; {spec.name} is a "
                f"{spec.task} model at {spec.input.spacing_mm} mm"
            )
        self.data_dir, self.reference_dir = Path(data_dir), Path(reference_dir)
        files = sorted(self.data_dir.glob("*.nii*"))
        if not files:
            raise FileNotFoundError(
                f"{self.data_dir} holds no label maps (*.nii, *.nii.gz); point --data-dir at a "
                "folder of 1 mm whole-head label maps (see training/README.md)"
            )
        held = set(holdout)
        self.files = [f for f in files if f.name.split(".")[0] not in held]
        self.held_out = [f.name for f in files if f.name.split(".")[0] in held]
        if include_ibsr:
            self.files.append(asset("atlas/ibsr_head.nii.gz"))
        self.hashes = {f.name: sha256_file(f) for f in self.files}
        self.seed = int(seed)
        self.config = RandomizedConfig(
            patch_shape=tuple(patch or spec.input.patch_size),
            channels=tuple(spec.input.channels),
            contrasts=tuple(spec.input.channels),
            absent_value=float(
                spec.input.absent_value if spec.input.absent_value is not None else 0.0
            ),
        )
        self.renderer = RandomizedRenderer(LabelMapBank.from_files(self.files), self.config)

    def subjects(self) -> list[Subject]:
        return [Subject(channels=(), name=f.name.split(".")[0]) for f in self.files]

    def read(self, subject: Subject) -> SubjectData:
        raise TypeError(
            "LabelMapSource draws every training sample afresh; use batches(), not read()"
        )

    def batches(self, batch_size: int, steps_per_epoch: int) -> RandomizedBatches:
        """The training batches (see :class:`RandomizedBatches`)."""
        return RandomizedBatches(
            self.renderer, range(len(self.files)), batch_size, steps_per_epoch, self.seed
        )

    def cases(self, split: str, count: int) -> list[Case]:
        from medzoo.train.reference import cases_file, read_references

        cases = reference_cases(self.spec, read_references(self.reference_dir, split)[:count])
        if not cases:
            raise ValueError(
                f"{cases_file(self.reference_dir)} lists no {split} scan; add one (see "
                "medzoo.train.reference)"
            )
        return cases

    def describe_test(self, cases: Sequence[Case]) -> str:
        names = ", ".join(case.name for case in cases)
        return (
            f"{len(cases)} REAL scan(s) never used for training or checkpoint selection "
            f"({names}), T1 alone through medzoo.predict, against classical reference tissues "
            "(ANTs Atropos) inside the reference brain mask, cerebellum and brainstem excluded; "
            "whole_dice_* over the whole image (medzoo.train.reference)"
        )

    def provenance(self) -> dict[str, Any]:
        from medzoo.train.reference import read_references

        return {
            "name": "domain-randomised scans from whole-head label maps",
            "generator": "medzoo.synth.randomized (fresh contrast, geometry, resolution, bias, "
            "noise for every sample)",
            "label_maps": self.hashes,
            "held_out_label_maps": self.held_out,
            "label_map_dir": str(self.data_dir),
            "renderer": self.config.to_dict(),
            "seed": self.seed,
            "real_reference_scans": {
                r.name: {"split": r.split, "scan": r.scan.name, "note": r.note}
                for r in read_references(self.reference_dir)
            },
        }


def _targets(person: Any) -> dict[str, float]:
    return {"age": float(person.age), "sex": 1.0 if person.sex == "M" else 0.0}


def train_spacing(spec: ModelSpec) -> tuple[float, float, float]:
    """The grid (x, y, z) mm training volumes are on: the model's input grid, or for
    super-resolution the fine output grid (the coarse input is made from it by block averaging,
    :func:`medzoo.train.tasks.model_io`)."""
    spacing = spec.output.spacing_mm or spec.input.spacing_mm
    return tuple(float(s) for s in spacing)  # type: ignore[return-value]


def _sr_factors(spec: ModelSpec) -> tuple[int, int, int]:
    """Upsampling factors (z, y, x) of a super-resolution spec."""
    coarse, fine = spec.input.spacing_mm, spec.output.spacing_mm
    return tuple(round(coarse[2 - k] / fine[2 - k]) for k in range(3))  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# Real datasets
# --------------------------------------------------------------------------------------------


def _split(subjects: list[Subject], fraction: float) -> tuple[list[Subject], list[Subject]]:
    """(training, held-out): the last ``fraction`` of the subjects (at least one) are held out."""
    if len(subjects) < 2:
        raise ValueError(
            f"a real dataset needs at least 2 subjects (one to train on, one to validate), found "
            f"{len(subjects)}"
        )
    held = max(1, round(len(subjects) * fraction))
    return subjects[:-held], subjects[-held:]


def _case(subject: Subject, channels: Sequence[str]) -> Case:
    inputs = {name: read_image(path) for name, path in zip(channels, subject.channels, strict=True)}
    label = None
    if subject.label is not None:
        array, geometry = read_label(subject.label)
        label = array_to_image(array.astype(np.uint8), geometry)
    return Case(subject.name, inputs, label=label, targets=dict(subject.targets))


class Mrbrains13Source(Source):
    """The MRBrainS13 training folders (see :mod:`medzoo.datasets.mrbrains13`); the last of the
    five subjects is held out for validation and test."""

    name = "mrbrains13"

    def __init__(self, spec: ModelSpec, data_dir: str | Path) -> None:
        super().__init__(spec)
        from medzoo.datasets.mrbrains13 import mrbrains13_subjects

        self.data_dir = Path(data_dir)
        everything = mrbrains13_subjects(self.data_dir, channels=tuple(spec.input.channels))
        self._train, self._held = _split(everything, 0.2)

    def subjects(self) -> list[Subject]:
        return self._train

    def cases(self, split: str, count: int) -> list[Case]:
        return [_case(s, self.spec.input.channels) for s in self._held[:count]]

    def provenance(self) -> dict[str, Any]:
        return {
            "name": "MRBrainS13",
            "url": "https://mrbrains13.isi.uu.nl",
            "subjects": len(self._train),
            "data_dir": str(self.data_dir),
        }


class IxiSource(Source):
    """IXI scans prepared by ``training/datasets/ixi.py`` (see :mod:`medzoo.datasets.ixi`);
    the last 10 % of the subjects are held out."""

    name = "ixi"

    def __init__(self, spec: ModelSpec, data_dir: str | Path) -> None:
        super().__init__(spec)
        from medzoo.datasets.ixi import ixi_subjects

        self.data_dir = Path(data_dir)
        channels = tuple(spec.input.channels)
        if get_task(spec).needs_fine_scans:
            raise ValueError(
                f"--data ixi is not available for {spec.task}: the prepared IXI scans are 3 mm, "
                f"coarser than the {spec.output.spacing_mm} mm output; train it on --data "
                "synthetic"
            )
        everything = ixi_subjects(self.data_dir, modalities=channels)
        self._train, self._held = _split(everything, 0.1)

    def subjects(self) -> list[Subject]:
        return self._train

    def cases(self, split: str, count: int) -> list[Case]:
        half = max(1, len(self._held) // 2)
        held = self._held[:half] if split == "validation" else self._held[half:] or self._held
        return [_case(s, self.spec.input.channels) for s in held[:count]]

    def provenance(self) -> dict[str, Any]:
        return {
            "name": "IXI",
            "url": "https://brain-development.org/ixi-dataset/",
            "license": "CC BY-SA 3.0",
            "subjects": len(self._train),
            "data_dir": str(self.data_dir),
        }


def make_source(
    spec: ModelSpec,
    data: str,
    *,
    data_dir: str | Path | None = None,
    subjects: int = 64,
    seed: int = 0,
    fov_mm: Sequence[float] | None = None,
    reference_dir: str | Path | None = None,
    patch: Sequence[int] | None = None,
    synthetic_fraction: float = 0.25,
) -> Source:
    """The source ``data`` ("synthetic", "labelmaps", "ixi", "mrbrains13", or for
    super-resolution "real" / "mixed", :class:`medzoo.train.sr_sources.RealSRSource`; "mixed"
    takes ``synthetic_fraction`` of its pairs from synthetic heads) for ``spec``."""
    if data not in SOURCES:
        raise ValueError(f"--data {data!r} is not a data source; use one of {', '.join(SOURCES)}")
    if data == "synthetic":
        return SyntheticSource(spec, subjects=subjects, seed=seed, fov_mm=fov_mm)
    if data in ("real", "mixed"):
        from medzoo.train.sr_sources import RealSRSource

        if spec.task != "super_resolution":
            raise ValueError(
                f"--data {data} makes super-resolution pairs from real scans; {spec.name} is a "
                f"{spec.task} model (use synthetic, labelmaps, ixi or mrbrains13)"
            )
        if reference_dir is None:
            raise ValueError(
                f"--data {data} validates on real 1 mm scans: give --reference-dir (e.g. "
                "training/references)"
            )
        if data == "real" and data_dir is None:
            raise ValueError(
                "--data real needs --data-dir, a folder of real 1 mm T1 scans (see "
                "training/README.md)"
            )
        return RealSRSource(
            spec,
            data_dir,
            reference_dir=reference_dir,
            synthetic_fraction=0.0 if data == "real" else synthetic_fraction,
            synthetic_subjects=min(subjects, 16),
            seed=seed,
            patch=patch,
        )
    if data_dir is None:
        raise ValueError(
            f"--data {data} needs --data-dir, the folder holding the dataset (see "
            "training/README.md for how to get it)"
        )
    if data == "labelmaps":
        if reference_dir is None:
            raise ValueError(
                "--data labelmaps validates on real scans: give --reference-dir (e.g. "
                "training/references)"
            )
        return LabelMapSource(spec, data_dir, reference_dir=reference_dir, seed=seed, patch=patch)
    if data == "mrbrains13":
        if spec.task != "segmentation":
            raise ValueError(f"--data mrbrains13 has label maps for segmentation, not {spec.task}")
        return Mrbrains13Source(spec, data_dir)
    return IxiSource(spec, data_dir)
