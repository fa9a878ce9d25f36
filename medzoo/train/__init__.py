"""Training: one trainer for every registry model, fed by synthetic heads or a real dataset.

- :func:`train` / :class:`TrainConfig` (:mod:`medzoo.train.trainer`): the loop, validation,
  checkpoints, logs and the published preset;
- :mod:`medzoo.train.sources`: synthetic heads (:mod:`medzoo.synth`), MRBrainS13, IXI;
- :mod:`medzoo.train.tasks`: per-task batches, augmentation and whole-scan evaluation;
- :mod:`medzoo.train.cli`: the options of ``training/<name>.py`` and ``medzoo train``;
- :mod:`medzoo.train.reference` and :mod:`medzoo.train.realscans`: checks on REAL scans
  (segmentation against classical references; the label-free checkpoints' reconstructions and
  anecdotes).
"""

from medzoo._lazy import lazy_exports

_LAZY = {name: "medzoo.train.trainer" for name in ("TrainConfig", "TrainResult", "train")}

__all__ = list(_LAZY)

# Lazy, so that the training scripts' --help and option parsing do not import Keras.
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
