"""medzoo.tasks: one class per task, looked up from the spec, importable without Keras."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medzoo.registry import REGISTRY
from medzoo.spec import TASKS
from medzoo.tasks import Evaluation, get_task
from medzoo.train import tasks as train_tasks


def test_every_task_name_has_one_class_and_every_registry_spec_finds_it():
    assert [get_task(name).name for name in TASKS] == list(TASKS)
    for spec in REGISTRY.values():
        assert get_task(spec) is get_task(spec.task)


def test_an_unknown_task_names_the_known_ones():
    with pytest.raises(ValueError, match="is not one of segmentation, regression"):
        get_task("denoising")


@pytest.mark.parametrize("spec", list(REGISTRY.values()), ids=list(REGISTRY))
def test_the_selection_metric_is_one_the_task_reports(spec):
    task = get_task(spec)
    metric, _ = task.selection
    assert metric in task.metric_names(spec)
    assert train_tasks.SELECTION[spec.task] == task.selection
    assert train_tasks.DEFAULT_BATCH[spec.task] == task.default_batch >= 1


def test_regression_and_classification_values_and_scores():
    spec = REGISTRY["resnet3d_ixi_sex"]
    task = get_task(spec)
    assert task.values(spec, np.array([0.25, 0.75])) == {"female": 0.25, "male": 0.75}
    assert task.values_are_probabilities

    class Case:
        def __init__(self, sex):
            self.targets = {"sex": sex, "age": 40.0}

    class Prediction:
        def __init__(self, values):
            self.values = values

    results = [(Case(1), Prediction({"female": 0.2, "male": 0.8}))]
    results.append((Case(0), Prediction({"female": 0.4, "male": 0.6})))
    scores = task.evaluate(spec, results)
    assert isinstance(scores, Evaluation)
    assert scores.metrics["accuracy"] == 0.5
    assert scores.metrics["log_loss"] == pytest.approx(-(np.log(0.8) + np.log(0.4)) / 2)
    age = REGISTRY["resnet3d_ixi_age"]
    errors = get_task(age).evaluate(age, [(Case(0), Prediction({"value": 43.0}))])
    assert errors.metrics == {"mae": 3.0, "bias": 3.0}


def test_tasks_and_data_subjects_import_without_keras():
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    probe = (
        "import sys, medzoo.tasks, medzoo.cohort.summary, medzoo.data.subjects; "
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_held_out_synthetic_cases_are_made_by_the_task():
    """Super-resolution: the truth is the fine head on the output grid (a size that is a multiple
    of the factors) and the input its block average on the coarse grid; every other task renders
    on its case spacing and scores the label map."""
    import SimpleITK as sitk  # noqa: N813

    from medzoo.geometry import Geometry
    from medzoo.io import array_to_image

    sr = REGISTRY["srnet3d_ixi"]
    task = get_task(sr)
    spacing, multiple = task.case_grid(sr)
    assert spacing == tuple(sr.output.spacing_mm)
    coarse_zyx = [m * s for m, s in zip(multiple, spacing[::-1], strict=True)]
    assert coarse_zyx == pytest.approx(list(sr.input.spacing_mm[::-1]))
    fine_array = np.random.default_rng(0).random([2 * m for m in multiple]).astype(np.float32)
    fine = array_to_image(fine_array, Geometry.from_image(sitk.GetImageFromArray(fine_array)))
    labels = sitk.GetImageFromArray(np.zeros(fine_array.shape, np.uint8))
    case = task.synthetic_case(sr, "c", {"t1": fine, "t2": fine}, labels, {"age": 30.0})
    assert case.reference is fine and case.label is None and list(case.inputs) == ["t1"]
    coarse = sitk.GetArrayFromImage(case.inputs["t1"])
    assert coarse.shape == (2, 2, 2)
    assert case.inputs["t1"].GetSpacing() == pytest.approx(sr.input.spacing_mm)
    fz, fy, fx = multiple
    np.testing.assert_allclose(coarse[1, 0, 1], fine_array[fz:, :fy, fx:].mean(), rtol=1e-6)
    assert task.needs_fine_scans
    for spec in REGISTRY.values():
        other = get_task(spec)
        if other is task:
            continue
        assert not other.needs_fine_scans
        assert other.case_grid(spec) == (other.case_spacing, (1, 1, 1))
        case = other.synthetic_case(spec, "c", {"t1": fine}, labels, {"age": 30.0})
        assert case.inputs == {"t1": fine} and case.label is labels and case.reference is None


def test_the_memory_estimate_adds_each_tasks_own_outputs():
    from medzoo.inference.memory import estimate_bytes

    # 4e6 scan voxels, 1e6 in model space: the outputs on the scan's grid make the peak
    size, spacing = (200, 200, 100), (0.5, 0.5, 1.0)
    native = 200 * 200 * 100
    seg, age = REGISTRY["unet3d_mrbrains"], REGISTRY["resnet3d_ixi_age"]
    classes = len(seg.output.labels)
    kept = estimate_bytes(seg, size, spacing, probabilities=True)
    # kept: float32 on the scan's grid, and blended in float32 (not float16) in model space
    model = 100 * 100 * 100
    assert kept - estimate_bytes(seg, size, spacing) == (native * 4 + model * 2) * classes
    sizes = dict(volume=123, slab=7)
    assert get_task(age).memory_bytes(age, native, native, **sizes) == 123  # a few values
    assert estimate_bytes(age, size, spacing, probabilities=True) == estimate_bytes(
        age, size, spacing
    )
    for spec in REGISTRY.values():
        assert get_task(spec).memory_bytes(spec, native, native, **sizes) >= 123
