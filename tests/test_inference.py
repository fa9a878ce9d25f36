"""Whole-scan inference: outputs overlay the input, stitching is exact, TTA, skipping, outputs."""

from __future__ import annotations

import csv
import dataclasses
import json
import tracemalloc
from pathlib import Path

import keras
import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
from keras import ops

from medzoo.cli import main
from medzoo.inference import (
    RANDOM_WEIGHTS,
    Prediction,
    WindowGrid,
    label_volumes,
    predict,
    runners,
    sliding_window,
    window_average,
    write_outputs,
)
from medzoo.inference.intensity import fit_normalization
from medzoo.io import Geometry, array_to_image, read_image
from medzoo.layers import LinearUpsampling3D
from medzoo.preprocessing import from_model_space, reorient
from medzoo.registry import InputSpec, ModelSpec, OutputSpec, attach_spec, build
from medzoo.tasks.segmentation import labels_on_native

DATA = Path(__file__).parent / "data"
BRAIN_IMAGE = DATA / "brain1_crop_image.nrrd"  # real LAS scan, 0.78 x 0.78 x 6.5 mm
RANGE_0_100 = {"method": "range", "low": 0.0, "high": 100.0, "out_range": [0.0, 1.0]}


# ----------------------------------------------------------------------------- test-only layers


@keras.saving.register_keras_serializable(package="medzoo_tests")
class ThresholdOneHot(keras.layers.Layer):
    """Two "probabilities": one-hot of (first channel > 0.5): background, foreground."""

    def call(self, x):
        foreground = ops.cast(x[..., :1] > 0.5, "float32")
        return ops.concatenate([1.0 - foreground, foreground], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2)


@keras.saving.register_keras_serializable(package="medzoo_tests")
class HalvesLeftRight(keras.layers.Layer):
    """Three classes: background; foreground in the low-x half of the window ("left");
    foreground in the high-x half ("right"). A network that knows anatomy by position."""

    def call(self, x):
        foreground = ops.cast(x[..., :1] > 0.5, "float32")
        width = ops.shape(x)[3]
        low_half = ops.cast(ops.arange(width) < width // 2, "float32")[None, None, None, :, None]
        return ops.concatenate(
            [1.0 - foreground, foreground * low_half, foreground * (1.0 - low_half)], axis=-1
        )

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 3)


def _no_builder(**_):
    raise AssertionError("test specs are never rebuilt")


def make_spec(
    task: str = "segmentation",
    *,
    channels=("T1",),
    orientation="RAS",
    spacing=(1.0, 1.0, 1.0),
    patch=(16, 16, 16),
    normalization=RANGE_0_100,
    output: OutputSpec | None = None,
    input_cls=InputSpec,
    **input_extra,
) -> ModelSpec:
    return ModelSpec(
        name=f"test_{task}",
        task=task,
        description="test model",
        builder=_no_builder,
        config={},
        input=input_cls(
            channels=tuple(channels),
            orientation=orientation,
            spacing_mm=tuple(spacing),
            normalization=normalization,
            patch_size=tuple(patch),
            **input_extra,
        ),
        output=output or OutputSpec(kind="label_probabilities", labels={0: "bg", 1: "fg"}),
        loss="none",
    )


def functional(layer: keras.layers.Layer, channels: int = 1) -> keras.Model:
    inputs = keras.Input((None, None, None, channels))
    return keras.Model(inputs, layer(inputs))


def threshold_model(spec: ModelSpec) -> keras.Model:
    return attach_spec(functional(ThresholdOneHot()), spec)


def rotation(degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array(
        [[1, 0, 0], [0, np.cos(a / 2), -np.sin(a / 2)], [0, np.sin(a / 2), np.cos(a / 2)]]
    )
    return rz @ rx


def scan(array: np.ndarray, spacing, direction=None, origin=(10.0, -20.0, 30.0)):
    direction = np.eye(3) if direction is None else direction
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(np.asarray(direction, float).ravel()))
    image.SetOrigin(origin)
    return image


def model_spacing(image: sitk.Image, orientation: str = "RAS") -> tuple[float, float, float]:
    """The spacing the image has once reoriented: a model working there resamples nothing."""
    return reorient(image, orientation).GetSpacing()


GRIDS = {
    "LPS anisotropic": (np.eye(3), (0.9, 1.3, 2.0)),
    "RAS anisotropic": (np.diag([-1.0, -1.0, 1.0]), (1.1, 0.7, 1.6)),
    "sagittal PIR": (np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0]], float), (1.0, 1.2, 1.5)),
    "oblique": (rotation(12.0), (1.0, 1.0, 2.5)),
}


# ----------------------------------------------------------------------------- native grid


@pytest.mark.parametrize("grid", list(GRIDS))
def test_segmentation_of_identity_model_equals_input_on_native_grid(grid):
    direction, spacing = GRIDS[grid]
    rng = np.random.default_rng(0)
    truth = (rng.random((19, 22, 17)) > 0.6).astype(np.uint8)  # no symmetry to hide a flip
    image = scan(truth * 100, spacing, direction)
    spec = make_spec(spacing=model_spacing(image))
    result = predict(threshold_model(spec), image, overlap=0.5, batch_size=3, progress=False)

    assert Geometry.from_image(result.labels).allclose(Geometry.from_image(image), 1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(result.labels), truth)
    assert result.windows.total > 1  # the volume was tiled, not one window
    assert Geometry.from_image(result.uncertainty).allclose(Geometry.from_image(image), 1e-6)
    # 0 up to float16 blending (a certain class sums to 1 - 2^-11 at worst)
    np.testing.assert_allclose(sitk.GetArrayFromImage(result.uncertainty), 0.0, atol=2e-3)


@pytest.mark.parametrize("grid", list(GRIDS))
def test_image_of_identity_model_equals_input_on_native_grid(grid):
    direction, spacing = GRIDS[grid]
    rng = np.random.default_rng(1)
    values = rng.uniform(0.0, 100.0, (18, 21, 16)).astype(np.float32)
    image = scan(values, spacing, direction)
    spec = make_spec(
        "super_resolution",
        spacing=model_spacing(image),
        output=OutputSpec(kind="image", spacing_mm=model_spacing(image)),
    )
    model = attach_spec(functional(keras.layers.Identity()), spec)
    result = predict(model, image, skip_background=False, progress=False)

    out = result.images["T1"]
    assert Geometry.from_image(out).allclose(Geometry.from_image(image), 1e-6)
    np.testing.assert_allclose(sitk.GetArrayFromImage(out), values, atol=1e-3)


@pytest.mark.parametrize(
    "extra", [{"fixed_size": True}, {"size_multiple": (4, 4, 4)}], ids=["fixed", "multiple"]
)
def test_volumes_smaller_than_the_window_are_padded_and_cropped_back(extra):
    rng = np.random.default_rng(8)
    truth = (rng.random((10, 13, 9)) > 0.5).astype(np.uint8)
    image = scan(truth * 100, (1.0, 1.0, 1.0))
    seen = []
    spec = make_spec(patch=(16, 16, 16), **extra)
    model = threshold_model(spec)
    network = model.predict_on_batch

    def recording(batch):
        seen.append(batch.shape[1:4])
        return network(batch)

    model.predict_on_batch = recording
    result = predict(model, image, progress=False)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(result.labels), truth)
    assert set(seen) == {(16, 16, 16)} if "fixed_size" in extra else {(12, 16, 12)}


def test_real_anisotropic_scan_segments_back_onto_its_own_grid():
    image = read_image(BRAIN_IMAGE)  # LAS, 0.78 x 0.78 x 6.5 mm, int16
    values = sitk.GetArrayFromImage(image).astype(np.float32)
    cut = float(np.percentile(values, 70))
    spec = make_spec(
        spacing=model_spacing(image),
        normalization={"method": "range", "low": cut - 1.0, "high": cut + 1.0},
        patch=(8, 32, 32),
    )
    result = predict(threshold_model(spec), BRAIN_IMAGE, progress=False)

    assert Geometry.from_image(result.labels).allclose(Geometry.from_image(image), 1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(result.labels), values > cut)


def test_resampled_probabilities_are_argmaxed_on_the_native_grid():
    z, y, x = np.mgrid[:24, :28, :26]
    sphere = ((z - 11.3) ** 2 + (y - 14.2) ** 2 + (x - 12.7) ** 2) < 8.5**2
    image = scan(sphere.astype(np.float32) * 100, (1.0, 1.0, 1.0), rotation(20.0))
    spec = make_spec(spacing=(2.0, 2.0, 2.0), patch=(8, 8, 8))
    result = predict(threshold_model(spec), image, probabilities=True, progress=False)

    labels = sitk.GetArrayFromImage(result.labels)
    assert Geometry.from_image(result.labels).allclose(Geometry.from_image(image), 1e-6)
    dice = 2 * np.sum(labels & sphere) / (labels.sum() + sphere.sum())
    assert dice > 0.9  # 2 mm model voxels on a 1 mm scan: the boundary is blocky, not shifted
    centre = np.argwhere(labels).mean(axis=0)
    np.testing.assert_allclose(centre, np.argwhere(sphere).mean(axis=0), atol=0.2)
    probs = sitk.GetArrayFromImage(result.probabilities)
    assert probs.shape == (*sphere.shape, 2)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(np.argmax(probs, axis=-1), labels)
    assert 0.3 < float(probs[sphere != labels.astype(bool), 1].mean()) < 0.7  # borders only


def test_back_resampling_in_slabs_equals_the_whole_grid_at_once(monkeypatch):
    """Big scans go back onto their grid a few slices at a time; the seams must not show."""
    z, y, x = np.mgrid[:24, :28, :26]
    sphere = ((z - 11.3) ** 2 + (y - 14.2) ** 2 + (x - 12.7) ** 2) < 8.5**2
    image = scan(sphere.astype(np.float32) * 100, (1.0, 1.2, 0.9), rotation(20.0))
    spec = make_spec(spacing=(2.0, 2.0, 2.0), patch=(8, 8, 8))
    model = threshold_model(spec)
    whole = predict(model, image, probabilities=True, progress=False)
    monkeypatch.setattr(runners, "SLAB_VOXELS", 26 * 28 * 5)  # slabs of 5 slices
    sliced = predict(model, image, probabilities=True, progress=False)

    assert Geometry.from_image(sliced.labels) == Geometry.from_image(image)
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(sliced.labels), sitk.GetArrayFromImage(whole.labels)
    )
    np.testing.assert_allclose(
        sitk.GetArrayFromImage(sliced.probabilities),
        sitk.GetArrayFromImage(whole.probabilities),
        atol=1e-6,
    )


def test_super_resolution_output_grid_refines_the_input_grid():
    spacing, direction = (2.0, 2.0, 2.0), rotation(15.0) @ np.diag([-1.0, -1.0, 1.0])
    z, y, x = np.mgrid[:10, :12, :9].astype(np.float32)
    image = scan(10 + 2 * x + 3 * y + 4 * z, spacing, direction)
    spec = make_spec(
        "super_resolution",
        spacing=model_spacing(image),
        patch=(8, 8, 8),
        normalization={"method": "range", "low": 0.0, "high": 200.0},
        output=OutputSpec(kind="image", spacing_mm=(1.0, 1.0, 1.0)),
    )
    model = attach_spec(functional(LinearUpsampling3D(2)), spec)
    result = predict(model, image, blend="constant", margin=1, progress=False)

    out = result.images["T1"]
    origin = np.asarray(image.GetOrigin()) + direction @ np.full(3, -0.5)
    assert out.GetSize() == (18, 24, 20)
    np.testing.assert_allclose(out.GetSpacing(), (1.0, 1.0, 1.0))
    np.testing.assert_allclose(out.GetDirection(), image.GetDirection(), atol=1e-12)
    np.testing.assert_allclose(out.GetOrigin(), origin, atol=1e-9)
    # Away from the clamped border the upsampled ramp is the ramp at the fine voxel centres.
    fz, fy, fx = np.mgrid[:20, :24, :18]
    expected = 10 + 2 * (fx - 0.5) / 2 + 3 * (fy - 0.5) / 2 + 4 * (fz - 0.5) / 2
    inner = (slice(1, -1),) * 3
    np.testing.assert_allclose(sitk.GetArrayFromImage(out)[inner], expected[inner], atol=1e-3)


def test_super_resolution_of_a_finer_scan_lands_on_its_own_grid():
    image = scan(np.full((16, 16, 16), 50.0, np.float32), (1.0, 1.0, 1.0), rotation(-8.0))
    spec = make_spec(
        "super_resolution",
        spacing=(2.0, 2.0, 2.0),
        patch=(8, 8, 8),
        output=OutputSpec(kind="image", spacing_mm=(1.0, 1.0, 1.0)),
    )
    model = attach_spec(functional(LinearUpsampling3D(2)), spec)
    out = predict(model, image, progress=False).images["T1"]
    assert Geometry.from_image(out).allclose(Geometry.from_image(image), 1e-6)
    np.testing.assert_allclose(sitk.GetArrayFromImage(out)[2:-2, 2:-2, 2:-2], 50.0, atol=1e-3)


# ----------------------------------------------------------------------------- window engine


def test_stitching_a_linear_model_equals_applying_it_to_the_whole_volume():
    conv = keras.layers.Conv3D(2, 3, padding="same", use_bias=False)
    model = functional(conv, channels=2)
    rng = np.random.default_rng(2)
    conv.set_weights([rng.normal(size=(3, 3, 3, 2, 2)).astype(np.float32)])
    volume = rng.normal(size=(21, 18, 25, 2)).astype(np.float32)
    whole = np.asarray(model.predict_on_batch(volume[None]))[0]
    for blend in ("gaussian", "constant"):
        stitched, stats = sliding_window(
            volume,
            model.predict_on_batch,
            (8, 8, 8),
            channels=2,
            overlap=0.5,
            margin=1,
            blend=blend,
            batch_size=4,
            progress=False,
        )
        assert stats.total == len(WindowGrid.cover(volume.shape[:3], (8, 8, 8), 0.5, 1)) > 8
        np.testing.assert_allclose(stitched, whole, atol=1e-4)


def test_without_margin_window_borders_differ_from_the_whole_volume():
    conv = keras.layers.Conv3D(1, 3, padding="same", use_bias=False, kernel_initializer="ones")
    model = functional(conv)
    volume = np.ones((16, 16, 16, 1), np.float32)
    stitched, _ = sliding_window(
        volume, model.predict_on_batch, (8, 8, 8), channels=1, blend="constant", progress=False
    )
    whole = np.asarray(model.predict_on_batch(volume[None]))[0]
    assert np.abs(stitched - whole).max() > 1.0  # the margin is what makes stitching exact


def test_upsampling_windows_are_stitched_on_the_finer_grid():
    volume = np.random.default_rng(9).normal(size=(5, 11, 7, 1)).astype(np.float32)

    def nearest_upsampling(batch):
        return batch.repeat(2, axis=1).repeat(3, axis=2).repeat(2, axis=3)

    output, _ = sliding_window(
        volume, nearest_upsampling, (8, 4, 8), channels=1, scale=(2, 3, 2), progress=False
    )
    expected = volume.repeat(2, axis=0).repeat(3, axis=1).repeat(2, axis=2)
    np.testing.assert_allclose(output, expected, atol=1e-6)


def test_window_grid_covers_the_volume_with_the_requested_overlap():
    grid = WindowGrid.cover((40, 17, 16), (16, 16, 16), overlap=0.5)
    assert grid.starts == ((0, 8, 16, 24), (0, 1), (0,))
    assert len(grid) == 8 and len(list(grid)) == 8
    with pytest.raises(ValueError, match="overlap"):
        WindowGrid.cover((40, 40, 40), (16, 16, 16), overlap=1.0)
    with pytest.raises(ValueError, match="smaller than the window"):
        WindowGrid.cover((8, 40, 40), (16, 16, 16))


def test_float16_blending_halves_the_output_and_keeps_its_arg_max():
    rng = np.random.default_rng(0)
    volume = rng.random((20, 20, 20, 1), dtype=np.float32)

    def network(batch):  # softmax over 4 classes of a smooth function of the input
        logits = np.concatenate([batch * k for k in range(4)], axis=-1) * 3.0
        e = np.exp(logits - logits.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    common = dict(channels=4, overlap=0.5, batch_size=3, progress=False)
    full, _ = sliding_window(volume, network, (8, 8, 8), **common)
    half, _ = sliding_window(volume, network, (8, 8, 8), dtype=np.float16, **common)
    assert full.dtype == np.float32 and half.dtype == np.float16
    assert half.nbytes * 2 == full.nbytes
    np.testing.assert_allclose(half, full, atol=2e-3)
    ties = np.sort(full, -1)[..., -1] - np.sort(full, -1)[..., -2] < 4e-3  # within float16 steps
    assert (np.argmax(half, -1) == np.argmax(full, -1))[~ties].all()


def test_windows_are_streamed_in_bounded_memory():
    volume = np.zeros((32, 32, 32, 1), np.float32)
    volume[8:24, 8:24, 8:24] = 1.0
    sizes = []

    def network(batch):
        sizes.append(len(batch))
        return batch * 2.0

    grid = WindowGrid.cover((32, 32, 32), (8, 8, 8), 0.75)
    all_windows_bytes = len(grid) * 8**3 * 4
    accumulators_bytes = volume.nbytes * 2
    tracemalloc.start()
    output, stats = sliding_window(
        volume, network, (8, 8, 8), channels=1, overlap=0.75, batch_size=5, progress=False
    )
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert stats.total == len(grid) == 13**3
    assert max(sizes) <= 5 and sum(sizes) == stats.total
    assert all_windows_bytes > 10 * accumulators_bytes  # materialising windows would show
    assert peak < 3 * accumulators_bytes
    np.testing.assert_allclose(output, volume * 2.0, atol=1e-6)


def test_background_skipping_gives_the_same_result_as_running_every_window():
    volume = np.zeros((20, 30, 28), np.float32)
    # Two blobs in opposite corners: the head's box is the whole volume, most windows in it
    # hold no foreground.
    volume[1:6, 2:9, 1:7] = 100.0
    volume[14:19, 21:28, 20:27] = 100.0
    volume[3, 4, 3] = 0.0
    image = scan(volume, (1.0, 1.0, 1.0))
    spec = make_spec(patch=(8, 8, 8))
    model = threshold_model(spec)
    skipped = predict(model, image, probabilities=True, progress=False)
    everything = predict(model, image, probabilities=True, skip_background=False, progress=False)

    assert skipped.windows.skipped > skipped.windows.total // 3
    assert everything.windows.skipped == 0
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(skipped.labels), sitk.GetArrayFromImage(everything.labels)
    )
    np.testing.assert_allclose(
        sitk.GetArrayFromImage(skipped.probabilities),
        sitk.GetArrayFromImage(everything.probabilities),
        atol=1e-6,
    )


@pytest.mark.parametrize("grid", ["LPS anisotropic", "oblique"])
def test_the_air_around_a_head_is_cropped_away_and_comes_back_as_background(grid):
    direction, spacing = GRIDS[grid]
    volume = np.zeros((40, 60, 56), np.float32)  # a small "head" in a large field of view
    volume[14:24, 20:34, 18:30] = 100.0
    volume[16, 22, 20] = 0.0
    image = scan(volume, spacing, direction)
    spec = make_spec(spacing=model_spacing(image), patch=(8, 8, 8))
    model = threshold_model(spec)
    options = dict(probabilities=True, head_margin_mm=3.0, progress=False)
    cropped = predict(model, image, **options)
    everything = predict(model, image, skip_background=False, **options)

    assert cropped.windows.total < everything.windows.total // 4
    for output in (cropped.labels, cropped.uncertainty, cropped.probabilities):
        assert Geometry.from_image(output) == Geometry.from_image(image)
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(cropped.labels), sitk.GetArrayFromImage(everything.labels)
    )
    np.testing.assert_allclose(
        sitk.GetArrayFromImage(cropped.probabilities),
        sitk.GetArrayFromImage(everything.probabilities),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        sitk.GetArrayFromImage(cropped.uncertainty),
        sitk.GetArrayFromImage(everything.uncertainty),
        atol=1e-6,
    )


def test_the_margin_around_the_head_adds_no_window():
    # A 20-voxel head in a 60-voxel field of view: 8-voxel windows at overlap 0.5 (stride 4)
    # need 4 windows per axis to cover the head itself; a 6 mm margin (20 + 12 voxels) would
    # need 7. The margin is kept only as far as it fills those 4 windows.
    volume = np.zeros((60, 60, 60), np.float32)
    volume[20:40, 20:40, 20:40] = 100.0
    image = scan(volume, (1.0, 1.0, 1.0))
    head = scan(volume[20:40, 20:40, 20:40], (1.0, 1.0, 1.0))
    spec = make_spec(patch=(8, 8, 8))
    model = threshold_model(spec)
    in_fov = predict(model, image, head_margin_mm=6.0, progress=False)
    alone = predict(model, head, skip_background=False, progress=False)
    everything = predict(model, image, skip_background=False, progress=False)

    assert in_fov.windows.total == alone.windows.total == 4**3
    assert everything.windows.total == 14**3
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(in_fov.labels), sitk.GetArrayFromImage(everything.labels)
    )


@pytest.mark.parametrize("grid", ["RAS anisotropic", "oblique"])
def test_labels_streamed_in_slabs_equal_resampling_the_whole_volume(grid, monkeypatch):
    # The memory-saving path (slabs, a block of the probabilities per slab, outputs pasted in
    # place) against the plain one: every class image resampled whole onto the whole scan grid.
    monkeypatch.setattr(runners, "SLAB_VOXELS", 300)  # many slabs of a few slices
    rng = np.random.default_rng(7)
    probs = rng.random((12, 14, 10, 4), dtype=np.float32)
    probs /= probs.sum(axis=-1, keepdims=True)
    model_grid = Geometry(
        (3.0, -2.0, 5.0), (1.5, 1.5, 1.5), (-1, 0, 0, 0, -1, 0, 0, 0, 1), (10, 14, 12)
    )
    direction, spacing = GRIDS[grid]
    size = (24, 30, 16)
    centre = np.asarray(model_grid.origin) + np.diag([-1, -1, 1]) @ (np.asarray([9, 13, 11]) * 0.75)
    extent = np.asarray(direction, float) @ (np.asarray(size) * np.asarray(spacing))
    origin = centre - extent / 2 + 6.0  # the scan's grid shifted off the model-space volume
    native = Geometry(tuple(origin), spacing, tuple(np.ravel(direction)), size)
    labels, uncertainty, kept = labels_on_native(
        probs, model_grid, native, keep=True, progress=False
    )
    plain = np.stack(
        [
            sitk.GetArrayFromImage(
                from_model_space(
                    array_to_image(probs[..., c], model_grid), native, default_value=float(c == 0)
                )
            )
            for c in range(probs.shape[-1])
        ],
        axis=-1,
    )
    entropy = array_to_image(runners.normalised_entropy(probs), model_grid)
    plain_uncertainty = sitk.GetArrayFromImage(from_model_space(entropy, native))

    for image in (labels, uncertainty, kept):
        assert Geometry.from_image(image) == native
    outside = (plain[..., 0] == 1.0).mean()
    assert 0.1 < outside < 0.9  # the scan's grid reaches beyond the model-space volume
    np.testing.assert_allclose(sitk.GetArrayFromImage(kept), plain, atol=1e-5)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(labels), plain.argmax(axis=-1))
    np.testing.assert_allclose(sitk.GetArrayFromImage(uncertainty), plain_uncertainty, atol=1e-5)


def test_image_outputs_outside_the_head_crop_are_the_background_intensity():
    volume = np.full((30, 44, 40), 0.0, np.float32)
    volume[10:20, 15:30, 12:26] = np.linspace(20.0, 90.0, 14, dtype=np.float32)
    image = scan(volume, (1.0, 1.0, 1.0))
    spec = make_spec(
        "super_resolution",
        spacing=model_spacing(image),
        patch=(8, 8, 8),
        output=OutputSpec(kind="image", spacing_mm=model_spacing(image)),
    )
    model = attach_spec(functional(keras.layers.Identity()), spec)
    result = predict(model, image, head_margin_mm=2.0, progress=False)
    everything = predict(model, image, skip_background=False, progress=False)

    out = result.images["T1"]
    assert result.windows.total < everything.windows.total // 4
    assert Geometry.from_image(out) == Geometry.from_image(image)
    np.testing.assert_allclose(sitk.GetArrayFromImage(out), volume, atol=1e-3)


def test_window_average_is_the_mean_over_foreground_windows():
    volume = np.zeros((16, 24, 16, 1), np.float32)
    volume[:, :8] = 0.5
    volume[:, 8:16] = 1.0

    def mean_of_window(batch):
        return batch.mean(axis=(1, 2, 3))

    mean, stats = window_average(
        volume,
        mean_of_window,
        (16, 8, 16),
        overlap=0.0,
        foreground=volume[..., 0] > 0.01,
        progress=False,
    )
    assert (stats.total, stats.skipped) == (3, 1)
    np.testing.assert_allclose(mean, [0.75])


# ----------------------------------------------------------------------------- TTA


def _left_right_volume() -> sitk.Image:
    rng = np.random.default_rng(3)
    return scan((rng.random((16, 16, 16)) > 0.5).astype(np.float32) * 100, (1.0, 1.0, 1.0))


def test_tta_with_left_right_pairs_restores_the_labels():
    labels = {0: "background", 1: "left", 2: "right"}
    spec = make_spec(
        patch=(32, 32, 32),
        output=OutputSpec(kind="label_probabilities", labels=labels, left_right_pairs=((1, 2),)),
    )
    model = attach_spec(functional(HalvesLeftRight()), spec)
    image = _left_right_volume()
    plain = sitk.GetArrayFromImage(predict(model, image, progress=False).labels)
    assert set(np.unique(plain)) == {0, 1, 2}
    for tta in ([(), (2,)], True):
        flipped = predict(model, image, tta=tta, progress=False)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(flipped.labels), plain)

    no_pairs = dataclasses.replace(spec, output=OutputSpec("label_probabilities", labels))
    confused = predict(attach_spec(functional(HalvesLeftRight()), no_pairs), image, tta=[(), (2,)])
    assert not np.array_equal(sitk.GetArrayFromImage(confused.labels), plain)


def test_tta_rejects_bad_flips():
    spec = make_spec()
    with pytest.raises(ValueError, match="tta flip"):
        predict(threshold_model(spec), _left_right_volume(), tta=[(3,)], progress=False)


# ----------------------------------------------------------------------------- inputs


def test_channels_by_name_in_any_order_and_missing_ones():
    t1 = scan(np.full((8, 8, 8), 80.0, np.float32), (1.0, 1.0, 1.0))
    t2 = scan(np.full((8, 8, 8), 20.0, np.float32), (1.0, 1.0, 1.0))
    spec = make_spec(channels=("T1", "T2"), patch=(8, 8, 8))
    model = attach_spec(functional(ThresholdOneHot(), channels=2), spec)
    by_name = predict(model, {"T2": t2, "T1": t1}, progress=False)
    in_order = predict(model, [t1, t2], progress=False)
    assert np.all(sitk.GetArrayFromImage(by_name.labels) == 1)  # channel 0 is T1 (0.8 > 0.5)
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(by_name.labels), sitk.GetArrayFromImage(in_order.labels)
    )
    with pytest.raises(ValueError, match=r"missing channel\(s\) \['T2'\]"):
        predict(model, {"T1": t1})
    with pytest.raises(ValueError, match="needs 2 scan"):
        predict(model, [t1])
    with pytest.raises(ValueError, match=r"unknown channel name\(s\) \['FLAIR'\]"):
        predict(model, {"T1": t1, "T2": t2, "FLAIR": t2})
    with pytest.raises(FileNotFoundError, match=r"nowhere\.nii\.gz"):
        predict(model, ["nowhere.nii.gz", t2])


@keras.saving.register_keras_serializable(package="medzoo_tests")
class LastChannelBelowZero(keras.layers.Layer):
    """Two "probabilities": one-hot of (last channel < 0): how a network sees an absent scan."""

    def call(self, x):
        foreground = ops.cast(x[..., -1:] < 0.0, "float32")
        return ops.concatenate([1.0 - foreground, foreground], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2)


@pytest.mark.parametrize(("absent_value", "foreground"), [(None, 0), (-1.0, 1)])
def test_a_channel_the_model_tolerates_missing_is_filled_with_its_absent_value(
    absent_value, foreground
):
    t1 = scan(np.full((8, 8, 8), 80.0, np.float32), (1.0, 1.0, 1.0))
    spec = make_spec(
        channels=("T1", "T2"), patch=(8, 8, 8), optional_channels=("T2",), absent_value=absent_value
    )
    model = attach_spec(functional(LastChannelBelowZero(), channels=2), spec)
    for inputs in ({"T1": t1}, [t1], t1):  # by name, by position, or the one scan alone
        result = predict(model, inputs, progress=False)
        # None: the low end of the value range (0, "dark"); -1: below it ("no scan").
        assert np.all(sitk.GetArrayFromImage(result.labels) == foreground)
        assert Geometry.from_image(result.labels).allclose(Geometry.from_image(t1))


def test_optional_channels_must_follow_a_required_first_channel():
    with pytest.raises(ValueError, match=r"first channel \(T2\) must be given"):
        make_spec(channels=("T2", "T1"), optional_channels=("T2",))
    with pytest.raises(ValueError, match=r"\['FLAIR'\] are not among the channels"):
        make_spec(channels=("T1", "T2"), optional_channels=("FLAIR",))


def test_too_few_or_too_many_positional_scans_name_the_range():
    t1 = scan(np.full((8, 8, 8), 80.0, np.float32), (1.0, 1.0, 1.0))
    spec = make_spec(channels=("T1", "T2", "PD"), patch=(8, 8, 8), optional_channels=("PD",))
    model = attach_spec(functional(ThresholdOneHot(), channels=3), spec)
    with pytest.raises(ValueError, match=r"needs 2 to 3 scans, in the order T1, T2, PD; got 1"):
        predict(model, [t1], progress=False)
    with pytest.raises(ValueError, match="got 4"):
        predict(model, [t1, t1, t1, t1], progress=False)


def test_channels_on_other_grids_are_resampled_or_refused():
    t1 = scan(np.full((10, 10, 10), 80.0, np.float32), (1.0, 1.0, 1.0))
    t2 = scan(np.full((5, 5, 5), 80.0, np.float32), (2.0, 2.0, 2.0), origin=(10.5, -19.5, 30.5))
    spec = make_spec(channels=("T1", "T2"), patch=(8, 8, 8))
    model = attach_spec(functional(ThresholdOneHot(), channels=2), spec)
    result = predict(model, [t1, t2], progress=False)
    assert Geometry.from_image(result.labels).allclose(Geometry.from_image(t1))
    with pytest.raises(ValueError, match="different grids"):
        predict(model, [t1, t2], resample_inputs=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"overlap": 1.5}, "overlap"),
        ({"blend": "median"}, "blend"),
        ({"batch_size": 0}, "batch_size"),
        ({"margin": -1}, "margin"),
        ({"background_threshold": 2.0}, "background_threshold"),
    ],
)
def test_bad_options_are_clear_errors(kwargs, match):
    image = scan(np.full((8, 8, 8), 80.0, np.float32), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match=match):
        predict(threshold_model(make_spec(patch=(8, 8, 8))), image, progress=False, **kwargs)


def test_percentile_normalisation_uses_the_nonzero_voxels():
    rng = np.random.default_rng(4)
    values = np.concatenate([np.zeros(5000), rng.uniform(10, 110, 5000)]).astype(np.float32)
    mapping = fit_normalization(values, {"method": "percentile", "low": 0.5, "high": 99.5})
    low, high = np.percentile(values[values != 0], [0.5, 99.5])
    np.testing.assert_allclose(
        mapping.apply(np.float32([low, high, 0.0, 1e6])), [0, 1, 0, 1], atol=1e-6
    )
    np.testing.assert_allclose(
        mapping.invert(mapping.apply(values[5000:6000])),
        np.clip(values[5000:6000], low, high),
        rtol=1e-5,
    )
    with pytest.raises(ValueError, match="all zero"):
        fit_normalization(np.zeros(10), {"method": "percentile"}, "T2")
    with pytest.raises(ValueError, match="single intensity"):
        fit_normalization(np.full(10, 7.0), {"method": "percentile"}, "T2")
    with pytest.raises(ValueError, match="not supported"):
        fit_normalization(values, {"method": "histogram"})


# ----------------------------------------------------------------------------- other tasks


def test_regression_averages_windows_in_target_units():
    spec = make_spec(
        "regression",
        patch=(8, 8, 8),
        output=OutputSpec(kind="value", units="years"),
    )
    inputs = keras.Input((None, None, None, 1))
    model = attach_spec(keras.Model(inputs, keras.layers.GlobalAveragePooling3D()(inputs)), spec)
    values = np.zeros((8, 8, 16), np.float32)
    values[:, :, :8], values[:, :, 8:] = 40.0, 80.0
    result = predict(model, scan(values, (1.0, 1.0, 1.0)), overlap=0.0, progress=False)
    assert result.windows.total == 2
    assert result.values == pytest.approx({"value": 0.6})


def test_autoencoder_returns_latent_and_reconstruction_on_the_native_grid():
    model = build(
        "cae3d_ixi", input_shape=(16, 16, 16), filters=(8, 8), strides=(2, 2), latent_dim=8
    )
    spec = model.medzoo_spec
    spec = dataclasses.replace(spec, input=dataclasses.replace(spec.input, patch_size=(16, 16, 16)))
    model = attach_spec(model, spec)
    rng = np.random.default_rng(5)
    images = [
        scan(rng.uniform(1, 100, (30, 32, 28)).astype(np.float32), (1.5, 1.5, 1.5))
        for _ in range(3)
    ]
    result = predict(model, images, progress=False)
    assert result.latent.shape == (8,) and np.all(np.isfinite(result.latent))
    assert set(result.images) == {"T1", "T2", "PD"}
    for image in result.images.values():
        assert Geometry.from_image(image).allclose(Geometry.from_image(images[0]), 1e-6)
    with pytest.raises(ValueError, match="tta is not available"):
        predict(model, images, tta=True, progress=False)


# ----------------------------------------------------------------------------- outputs


def test_outputs_for_people(tmp_path):
    volume = np.zeros((12, 16, 14), np.float32)
    volume[3:9, 4:12, 5:10] = 100.0
    image = scan(volume, (0.8, 1.0, 2.0), rotation(5.0))
    result = predict(threshold_model(make_spec(spacing=model_spacing(image))), image)
    written = write_outputs(result, tmp_path / "out")

    assert {"labels", "uncertainty", "volumes", "overlay", "record"} <= set(written)
    labels = read_image(written["labels"])
    assert Geometry.from_image(labels).allclose(Geometry.from_image(image), 1e-5)
    with open(written["volumes"], newline="") as stream:
        rows = {int(row["label"]): row for row in csv.DictReader(stream)}
    assert float(rows[1]["volume_ml"]) == pytest.approx(6 * 8 * 5 * 0.8 * 1.0 * 2.0 / 1000)
    assert rows[1]["name"] == "fg" and int(rows[0]["voxels"]) == volume.size - 240
    png = sitk.ReadImage(str(written["overlay"]))
    assert png.GetDimension() == 2 and png.GetNumberOfComponentsPerPixel() == 3
    record = json.loads(written["record"].read_text())
    assert record["random_weights"] is False and record["task"] == "segmentation"
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left behind


def test_label_volumes_in_millilitres():
    labels = scan(np.array([[[0, 1], [1, 2]]] * 2, np.uint8), (2.0, 1.0, 0.5))
    rows = label_volumes(labels, {0: "background", 1: "a", 2: "b", 3: "absent"})
    assert [(r["label"], r["voxels"], r["volume_ml"]) for r in rows] == [
        (0, 2, "0.002"),
        (1, 4, "0.004"),
        (2, 2, "0.002"),
        (3, 0, "0.000"),
    ]


def test_orthogonal_slices_follow_the_display_convention():
    # A marker in the patient's right, anterior, superior corner of an LPS (identity) scan:
    # x low = right, y low = anterior, z high = superior.
    array = np.zeros((10, 12, 14), np.float32)
    array[-1, 0, 0] = 100.0
    picture = sitk.GetArrayFromImage(_slices_through(array))
    # Axial 14 x 12 (x, y), coronal 14 x 10 (x, z), sagittal 12 x 10 (y, z), 4-pixel gaps.
    assert picture.shape == (12, 14 + 4 + 14 + 4 + 12, 3)
    marked = np.argwhere(picture.sum(axis=-1) > 0).tolist()
    # Axial: anterior up, patient right on the left; coronal: superior up, right on the left;
    # sagittal: superior up, anterior on the left.
    assert marked == [[0, 0], [0, 18], [0, 36]]


def _slices_through(array: np.ndarray) -> sitk.Image:
    from medzoo.inference import orthogonal_slices

    image = scan(array, (1.0, 1.0, 1.0))
    labels = scan((array > 0).astype(np.uint8), (1.0, 1.0, 1.0))
    return orthogonal_slices(image, labels)


def test_random_weights_run_the_registry_model_and_say_so(tmp_path, caplog):
    image = scan(np.random.default_rng(6).uniform(0, 100, (8, 9, 8)).astype(np.float32), (4, 4, 4))
    result = predict("srnet3d_ixi", image, random_weights=True, progress=False)
    assert result.random_weights and result.weights == RANDOM_WEIGHTS
    assert "RANDOM, UNTRAINED" in caplog.text
    out = result.images["T1"]
    assert out.GetSize() == (32, 36, 32) and out.GetSpacing() == (1.0, 1.0, 1.0)
    written = write_outputs(result, tmp_path)
    record = json.loads(written["record"].read_text())
    assert record["random_weights"] is True and "RANDOM" in record["WARNING"]


def test_random_weights_need_a_name():
    spec = make_spec()
    with pytest.raises(ValueError, match="random_weights=True needs a registry name"):
        predict(threshold_model(spec), _left_right_volume(), random_weights=True)
    assert isinstance(Prediction.random_weights, property)


def test_demo_runs_the_bundled_scan(tmp_path):
    from medzoo.hub import read_manifest
    from medzoo.inference import DEMO_SCAN, run_demo

    results = run_demo(tmp_path, models=["resnet3d_ixi_age"], progress=False)
    prediction, written = results["resnet3d_ixi_age"]
    published = "resnet3d_ixi_age" in read_manifest().models
    assert prediction.random_weights is not published
    assert np.isfinite(prediction.values["value"])
    assert Geometry.from_image(prediction.scan).allclose(Geometry.from_image(read_image(DEMO_SCAN)))
    assert written["values"] == tmp_path / "resnet3d_ixi_age" / "values.csv"
    record = json.loads(written["record"].read_text())
    assert record["random_weights"] is not published


# ----------------------------------------------------------------------------- command line


def test_cli_predict_writes_the_outputs(tmp_path, capsys):
    path = tmp_path / "t1.nii.gz"
    sitk.WriteImage(scan(np.random.default_rng(7).uniform(0, 90, (8, 8, 8)), (4, 4, 4)), str(path))
    code = main(
        [
            "predict",
            "resnet3d_ixi_sex",
            str(path),
            "-o",
            str(tmp_path / "out"),
            "--random-weights",
            "--batch-size",
            "1",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "weights: RANDOM" in out and "female" in out
    with open(tmp_path / "out" / "values.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [r["quantity"] for r in rows] == ["female", "male"]
    assert sum(float(r["value"]) for r in rows) == pytest.approx(1.0, abs=1e-4)
    assert all(r["weights"] == RANDOM_WEIGHTS for r in rows)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--channel", "T1"], "NAME=PATH"),
        (["a.nii.gz", "--channel", "T1=b.nii.gz"], "not both"),
        ([], "no scan given"),
        (["--channel", "T2=b.nii.gz"], "unknown channel"),
    ],
)
def test_cli_predict_reports_bad_arguments(tmp_path, capsys, argv, message):
    code = main(["predict", "resnet3d_ixi_age", *argv, "-o", str(tmp_path), "--random-weights"])
    assert code == 2
    assert message in capsys.readouterr().err
