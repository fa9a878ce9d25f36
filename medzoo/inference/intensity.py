"""Old home of the spec-driven intensity normalisation, now :mod:`medzoo.normalization`.

Re-exported so that existing imports keep working; new code imports ``medzoo.normalization``.
"""

from medzoo.normalization import METHODS, IntensityMap, fit_normalization

__all__ = ["METHODS", "IntensityMap", "fit_normalization"]
