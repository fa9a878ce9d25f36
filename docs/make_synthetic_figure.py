"""Draw docs/synthetic_samples.png: what the synthetic-scan engine (medzoo.synth) produces.

Top block: one row per synthetic subject (a cohort of adults of different ages and sexes),
columns T1, T1-IR, T2-FLAIR, T2, PD and the MRBrainS13 labels over the T1, one axial slice
each. Bottom block: one anatomy (same seed, same sex) at ages 25, 55 and 85, as T1 and as FLAIR:
the ventricles widen, the sulci open and white-matter lesions appear.

Slices are shown in radiological convention (patient's right on the left, anterior at the top).
The PNG is written with SimpleITK (no plotting library).

    python docs/make_synthetic_figure.py [output.png]
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813
from figure_parts import PAD, caption, grey, row
from tqdm.auto import tqdm

from medzoo.synth import Subject, SynthConfig, Synthesizer, make_cohort

logger = logging.getLogger("make_synthetic_figure")

CONTRASTS = ("T1", "T1_IR", "T2_FLAIR", "T2", "PD")
TITLES = ("T1", "T1-IR", "FLAIR", "T2", "PD", "LABELS")
AGES = (25, 55, 85)
SLICE_SHAPE = (5, 200, 168)  # (z, y, x) voxels at 1 mm; the middle slice is shown

# MRBrainS13 class colours (RGB): background transparent.
COLOURS = np.array(
    [
        (0, 0, 0),
        (70, 130, 255),  # cortical grey matter
        (0, 200, 200),  # basal ganglia
        (255, 255, 255),  # white matter
        (255, 40, 40),  # white-matter lesions
        (255, 200, 0),  # extracerebral CSF
        (255, 120, 0),  # ventricles
        (150, 220, 80),  # cerebellum
        (200, 80, 220),  # brainstem
    ],
    dtype=np.float32,
)


def display(slice_yx: np.ndarray) -> np.ndarray:
    """RAS array slice (y, x) -> radiological view (anterior up, patient right on the left)."""
    return slice_yx[::-1, ::-1]


def overlay(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    base = np.repeat(np.clip(image, 0, 1)[..., None] * 255, 3, axis=-1)
    colour = COLOURS[labels]
    alpha = np.where(labels[..., None] > 0, 0.55, 0.0)
    return (base * (1 - alpha) + colour * alpha).astype(np.uint8)


def main(path: Path) -> None:
    config = SynthConfig(
        contrasts=CONTRASTS,
        output_shape=SLICE_SHAPE,
        centre_jitter_mm=4.0,
        slice_thickness_mm=(1.0, 3.0),
        noise_std=(0.01, 0.03),
    )
    synth = Synthesizer(config)
    middle = SLICE_SHAPE[0] // 2
    cohort = make_cohort(4, age_range=(25, 85), seed=3)
    rows = []
    for i, subject in enumerate(tqdm(cohort, desc="cohort rows")):
        sample = synth.sample(seed=100 + i, subject=subject)
        image, labels = sample.image[middle], sample.labels[middle]
        panels = [grey(display(image[..., c])) for c in range(len(CONTRASTS))]
        panels.append(overlay(display(image[..., 0]), display(labels)))
        rows.append(row(panels))
        logger.info("row %d: %s, %.0f years, %s", i, subject.subject_id, subject.age, subject.sex)
    width = rows[0].shape[1]
    panel_width = SLICE_SHAPE[2] + 2 * PAD
    header = np.concatenate([caption(t, panel_width) for t in TITLES], axis=1)

    ageing = Synthesizer(SynthConfig(**{**config.to_dict(), "contrasts": ["T1", "T2_FLAIR"]}))
    t1, flair = [], []
    for age in tqdm(AGES, desc="ageing row"):
        sample = ageing.sample(seed=7, subject=Subject.typical(age, "F", seed=11))
        t1.append(grey(display(sample.image[middle, ..., 0])))
        flair.append(grey(display(sample.image[middle, ..., 1])))
    age_header = np.concatenate(
        [caption(f"T1 AGE {a}", panel_width) for a in AGES]
        + [caption(f"FLAIR AGE {a}", panel_width) for a in AGES],
        axis=1,
    )
    figure = np.concatenate(
        [header, *rows, np.zeros((3 * PAD, width, 3), np.uint8), age_header, row(t1 + flair)],
        axis=0,
    )
    handle, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent)
    os.close(handle)
    try:
        sitk.WriteImage(sitk.GetImageFromArray(figure, isVector=True), tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    logger.info("wrote %s (%d x %d pixels)", path, figure.shape[1], figure.shape[0])


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    out = (
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(__file__).with_name("synthetic_samples.png")
    )
    main(out)
