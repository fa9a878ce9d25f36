"""One class per task, owning what differs between tasks.

==================  =========================================  ===================
task                class                                      best checkpoint by
==================  =========================================  ===================
segmentation        :class:`~.segmentation.Segmentation`       highest dice_mean
regression          :class:`~.regression.Regression`           lowest mae
classification      :class:`~.classification.Classification`   lowest log_loss
autoencoder         :class:`~.autoencoder.Autoencoder`         highest psnr
super_resolution    :class:`~.super_resolution.SuperResolution` highest psnr
==================  =========================================  ===================

``get_task(spec)`` (or a task name) gives the instance; the trainer, the synthetic source and
:func:`medzoo.predict` ask it instead of branching on ``spec.task``. Adding a task: one file
here with a :class:`~.base.Task` subclass, listed in ``_CLASSES`` below, its name in
:data:`medzoo.spec.TASKS`, and a registry entry (see CONTRIBUTING.md).

Importing this package does not import Keras.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from medzoo.tasks.autoencoder import Autoencoder
from medzoo.tasks.base import Evaluation, Task
from medzoo.tasks.classification import Classification
from medzoo.tasks.regression import Regression
from medzoo.tasks.segmentation import Segmentation
from medzoo.tasks.super_resolution import SuperResolution

if TYPE_CHECKING:
    from medzoo.spec import ModelSpec

__all__ = [
    "Autoencoder",
    "Classification",
    "Evaluation",
    "Regression",
    "Segmentation",
    "SuperResolution",
    "Task",
    "get_task",
]

_CLASSES = (Segmentation, Regression, Classification, Autoencoder, SuperResolution)
_BY_NAME: dict[str, Task] = {cls.name: cls() for cls in _CLASSES}


def get_task(task: str | ModelSpec) -> Task:
    """The :class:`Task` for a task name or for a spec's ``task``."""
    name = task if isinstance(task, str) else task.task
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(
            f"task {name!r} is not one of {', '.join(_BY_NAME)}; a spec's task must name a "
            "class of medzoo.tasks"
        ) from None
