"""Whole-scan inference in native space: scans in, results that overlay them out.

- :func:`predict` runs any registered model on scans in any orientation, spacing and size
  (:mod:`medzoo.inference.predict` describes the pipeline and each task's outputs);
- :func:`write_outputs` writes NIfTI files, CSV tables, a PNG and a JSON record;
- :func:`sliding_window` / :func:`window_average` are the window engine on plain arrays;
- :func:`run_demo` runs the bundled head scan through the T1-only models.
"""

from medzoo.inference.demo import DEMO_MODELS, DEMO_SCAN, run_demo
from medzoo.inference.predict import RANDOM_WEIGHTS, Prediction, predict, resolve_model
from medzoo.inference.report import label_volumes, orthogonal_slices, write_outputs
from medzoo.inference.window import WindowGrid, WindowStats, sliding_window, window_average

__all__ = [
    "DEMO_MODELS",
    "DEMO_SCAN",
    "RANDOM_WEIGHTS",
    "Prediction",
    "WindowGrid",
    "WindowStats",
    "label_volumes",
    "orthogonal_slices",
    "predict",
    "resolve_model",
    "run_demo",
    "sliding_window",
    "window_average",
    "write_outputs",
]
