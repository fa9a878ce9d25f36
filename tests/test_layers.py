"""Numerics and serialisation of the 3D layers (run on TensorFlow and on JAX)."""

import math

import keras
import numpy as np
import pytest

from medzoo.layers import (
    BSplineUpsampling3D,
    LearnedUpsampling3D,
    LinearUpsampling3D,
    ResidualUnit3D,
    SelectLeakyReLU,
    SpatialSizeCheck,
)
from medzoo.layers.upsampling import bspline_prefilter

pytestmark = pytest.mark.backend


def _ramp(shape=(4, 5, 6), coefficients=(2.0, 3.0, -1.0)):
    grids = np.meshgrid(*[np.arange(n, dtype="float32") for n in shape], indexing="ij")
    return sum(c * g for c, g in zip(coefficients, grids, strict=True))[None, ..., None]


def _expected_linear(volume, factors):
    """Half-voxel, edge-clamped linear upsampling of a (z, y, x) ramp, computed analytically."""
    shape = volume.shape
    coords = [
        np.clip((np.arange(n * f) + 0.5) / f - 0.5, 0, n - 1)
        for n, f in zip(shape, factors, strict=True)
    ]
    z, y, x = np.meshgrid(*coords, indexing="ij")
    return 2.0 * z + 3.0 * y - 1.0 * x


@pytest.mark.parametrize("factors", [(2, 2, 2), (1, 2, 2), (2, 3, 4), (3, 1, 1)])
def test_linear_upsampling_is_exact_on_a_ramp(factors):
    ramp = _ramp()
    out = keras.ops.convert_to_numpy(LinearUpsampling3D(factors)(ramp))
    assert out.shape == (1, 4 * factors[0], 5 * factors[1], 6 * factors[2], 1)
    np.testing.assert_allclose(
        out[0, ..., 0], _expected_linear(ramp[0, ..., 0], factors), atol=1e-5
    )
    # Away from the clamped borders the output is the ramp itself at the new voxel centres.
    inner = tuple(slice(f, -f if f > 1 else None) for f in factors)
    assert np.ptp(np.diff(out[0, ..., 0][inner], axis=2)) < 1e-5


def test_linear_upsampling_keeps_constant_and_mean():
    rng = np.random.default_rng(0)
    volume = rng.normal(size=(2, 3, 4, 5, 2)).astype("float32")
    out = keras.ops.convert_to_numpy(LinearUpsampling3D(2)(volume))
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), volume.mean(axis=(1, 2, 3)), atol=1e-5)
    constant = np.full((1, 3, 3, 3, 1), 7.0, "float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(LinearUpsampling3D(3)(constant)), 7.0)
    assert not LinearUpsampling3D(2).trainable_weights


@pytest.mark.parametrize("factors", [(2, 2, 2), (1, 2, 2), (4, 4, 4), (3, 2, 1)])
def test_learned_upsampling_starts_as_linear(factors):
    rng = np.random.default_rng(1)
    volume = rng.normal(size=(2, 3, 4, 5, 3)).astype("float32")
    linear = keras.ops.convert_to_numpy(LinearUpsampling3D(factors)(volume))
    learned_layer = LearnedUpsampling3D(factors)
    learned = keras.ops.convert_to_numpy(learned_layer(volume))
    np.testing.assert_allclose(learned, linear, atol=1e-5)
    assert len(learned_layer.trainable_weights) == 2  # kernel and bias train


def _sitk_bspline(coarse_zyx: np.ndarray, factors_zyx) -> np.ndarray:
    """SimpleITK's sitkBSpline of ``coarse_zyx`` (spacing = factor mm, voxel centres at the
    centres of the 1 mm blocks, as medzoo.acquisition writes a coarse scan) onto the 1 mm grid."""
    import SimpleITK as sitk  # noqa: N813

    f_xyz = [float(f) for f in factors_zyx[::-1]]
    coarse = sitk.GetImageFromArray(coarse_zyx.astype(np.float32))
    coarse.SetSpacing(f_xyz)
    coarse.SetOrigin([(f - 1) / 2 for f in f_xyz])
    fine_size = [int(n * f) for n, f in zip(coarse.GetSize(), f_xyz, strict=True)]
    fine = sitk.Image(fine_size, sitk.sitkFloat32)
    out = sitk.Resample(coarse, fine, sitk.Transform(), sitk.sitkBSpline, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out).astype(np.float64)


def _real_t1_crop(size_zyx) -> np.ndarray:
    """A crop of the bundled real Colin27 T1 around the brain centre, scaled to about [0, 1]."""
    import SimpleITK as sitk  # noqa: N813

    from medzoo.assets import asset

    path = asset("demo/colin27_t1_1mm.nii.gz")
    volume = sitk.GetArrayFromImage(sitk.ReadImage(str(path))).astype(np.float32)
    volume /= np.percentile(volume[volume > 0], 99.5)
    start = [c // 2 - n // 2 for c, n in zip(volume.shape, size_zyx, strict=True)]
    return volume[tuple(slice(s, s + n) for s, n in zip(start, size_zyx, strict=True))]


@pytest.mark.parametrize("factors", [(4, 4, 4), (1, 2, 3)])
def test_bspline_upsampling_matches_simpleitk_on_a_real_t1(factors):
    # A real 1 mm T1 block-averaged by ``factors`` (the acquisition model's block profile),
    # then upsampled back by the layer and by SimpleITK on the same geometry: the same numbers,
    # borders (mirror boundary) included, up to the truncated prefilter.
    fine = _real_t1_crop([12 * f for f in factors])
    shape = [n // f for n, f in zip(fine.shape, factors, strict=True)]
    coarse = fine.reshape(shape[0], factors[0], shape[1], factors[1], shape[2], factors[2])
    coarse = coarse.mean(axis=(1, 3, 5))
    expected = _sitk_bspline(coarse, factors)
    out = keras.ops.convert_to_numpy(BSplineUpsampling3D(factors)(coarse[None, ..., None]))
    diff = np.abs(out[0, ..., 0].astype(np.float64) - expected)
    assert out.shape == (1, *fine.shape, 1)
    psnr = 10 * math.log10(1.0 / np.mean(diff**2))  # the image spans about [0, 1]
    assert psnr > 80.0, psnr
    assert diff.max() < 1e-3 and diff.mean() < 2e-5, (diff.max(), diff.mean())
    # It is the cubic interpolation, not the linear one: trilinear differs by orders more.
    linear = keras.ops.convert_to_numpy(LinearUpsampling3D(factors)(coarse[None, ..., None]))
    assert np.abs(linear[0, ..., 0] - expected).mean() > 100 * diff.mean()


def test_bspline_upsampling_borders_of_tiny_inputs_match_simpleitk():
    # Inputs smaller than the filter reach: the mirror extension repeats (the prefilter's
    # reach is 11 coarse voxels), as SimpleITK's exact IIR prefilter does. (Not 2 voxels: there
    # SimpleITK's kernel evaluation mirrors once and reads index -1.)
    coarse = np.random.default_rng(5).uniform(size=(3, 4, 5)).astype("float32")
    out = keras.ops.convert_to_numpy(BSplineUpsampling3D((2, 4, 3))(coarse[None, ..., None]))
    np.testing.assert_allclose(out[0, ..., 0], _sitk_bspline(coarse, (2, 4, 3)), atol=2e-4)


def test_bspline_prefilter_truncation_error_falls_with_taps():
    # The measured choice of the default: 8 taps per side are within ~1e-5 of the IIR filter.
    fine = _real_t1_crop((48, 48, 48))
    coarse = fine.reshape(12, 4, 12, 4, 12, 4).mean(axis=(1, 3, 5))
    expected = _sitk_bspline(coarse, (4, 4, 4))
    errors = []
    for taps in (2, 4, 8):
        out = keras.ops.convert_to_numpy(BSplineUpsampling3D(4, taps)(coarse[None, ..., None]))
        errors.append(np.abs(out[0, ..., 0] - expected).mean())
    assert errors[0] > 10 * errors[1] > 100 * errors[2], errors
    assert BSplineUpsampling3D(4).prefilter_taps == 8
    h = bspline_prefilter(8)
    assert (
        h.size == 17
        and math.isclose(h.sum(), 1.0)
        and math.isclose(h[8], math.sqrt(3), rel_tol=1e-4)
    )


def test_bspline_upsampling_keeps_constants_and_has_no_weights():
    constant = np.full((2, 3, 4, 5, 2), 0.7, "float32")
    out = keras.ops.convert_to_numpy(BSplineUpsampling3D((1, 2, 4))(constant))
    assert out.shape == (2, 3, 8, 20, 2)
    np.testing.assert_allclose(out, 0.7, atol=1e-6)
    layer = BSplineUpsampling3D(2)
    layer(constant)
    assert not layer.weights
    with pytest.raises(ValueError, match="prefilter_taps must be an int >= 1"):
        BSplineUpsampling3D(2, prefilter_taps=0)


def test_learned_upsampling_can_change_channels():
    out = LearnedUpsampling3D(2, filters=5)(np.ones((1, 2, 2, 2, 3), "float32"))
    assert tuple(out.shape) == (1, 4, 4, 4, 5)


@pytest.mark.parametrize(
    ("strides", "filters", "expected"),
    [(1, 4, (2, 8, 8, 8, 4)), (2, 6, (2, 4, 4, 4, 6)), ((1, 2, 2), 4, (2, 8, 4, 4, 4))],
)
def test_residual_unit_shapes(strides, filters, expected):
    unit = ResidualUnit3D(filters, strides=strides)
    out = unit(np.ones((2, 8, 8, 8, 4), "float32"))
    assert tuple(out.shape) == expected
    has_projection = strides != 1 or filters != 4
    assert (unit.projection is not None) == has_projection


def test_residual_unit_with_identity_shortcut_passes_input_when_convs_are_zero():
    unit = ResidualUnit3D(3, normalization="none")
    x = np.random.default_rng(2).normal(size=(1, 4, 4, 4, 3)).astype("float32")
    unit(x)
    unit.set_weights([np.zeros_like(w) for w in unit.get_weights()])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(unit(x)), x, atol=1e-6)


@pytest.mark.parametrize("normalization", ["batch", "instance", "group", "layer", "none"])
def test_gradients_reach_the_first_layer(normalization):
    inputs = keras.Input((8, 8, 8, 2))
    x = keras.layers.Conv3D(8, 3, padding="same", name="first")(inputs)
    x = ResidualUnit3D(8, strides=2, normalization=normalization)(x)
    x = ResidualUnit3D(8, normalization=normalization, activation="elu")(x)
    x = LearnedUpsampling3D(2)(x)
    outputs = LinearUpsampling3D(1)(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    first_before = model.get_layer("first").get_weights()[0].copy()
    rng = np.random.default_rng(3)
    model.train_on_batch(rng.normal(size=(2, 8, 8, 8, 2)), rng.normal(size=(2, 8, 8, 8, 8)))
    assert np.abs(model.get_layer("first").get_weights()[0] - first_before).max() > 0


@pytest.mark.parametrize(
    "layer",
    [
        ResidualUnit3D(4, strides=(1, 2, 2), activation="relu", normalization="instance"),
        LinearUpsampling3D((1, 2, 2)),
        BSplineUpsampling3D((2, 1, 3), prefilter_taps=5),
        LearnedUpsampling3D((2, 1, 2)),
        SpatialSizeCheck((2, 4, 4), channels=4, channel_names=["a", "b", "c", "d"]),
        SelectLeakyReLU(negative_slope=0.1),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_layers_round_trip_through_keras_files(layer, tmp_path):
    inputs = keras.Input((4, 8, 8, 4))
    model = keras.Model(inputs, layer(inputs))
    x = np.random.default_rng(4).normal(size=(1, 4, 8, 8, 4)).astype("float32")
    path = tmp_path / "layer.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(reloaded(x)), keras.ops.convert_to_numpy(model(x)), atol=1e-6
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(filters=4, activation="swishy"), "Unknown activation 'swishy'"),
        (dict(filters=4, normalization="weight"), "Unknown normalization 'weight'"),
        (dict(filters=4, strides=(1, 2)), "strides must be"),
        (dict(filters=0), "filters must be a positive int"),
    ],
)
def test_residual_unit_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ResidualUnit3D(**kwargs)


def test_layers_reject_wrong_rank():
    with pytest.raises(ValueError, match="5D tensor"):
        ResidualUnit3D(4)(np.ones((8, 8, 8, 1), "float32"))
    with pytest.raises(ValueError, match="5D tensor"):
        LinearUpsampling3D(2)(np.ones((1, 8, 8, 1), "float32"))
    with pytest.raises(ValueError, match="5D tensor"):
        BSplineUpsampling3D(2)(np.ones((1, 8, 8, 1), "float32"))


def test_size_check_names_the_problem_and_the_fix():
    check = SpatialSizeCheck((2, 8, 8), channels=3, channel_names=["T1", "T1_IR", "T2_FLAIR"])
    with pytest.raises(ValueError, match=r"y=12 is not a multiple of 8.*\(4, 16, 16\)"):
        check(np.ones((1, 4, 12, 16, 3), "float32"))
    with pytest.raises(
        ValueError, match=r"Expected 3 input channels \(T1, T1_IR, T2_FLAIR\), got 2"
    ):
        check(np.ones((1, 4, 16, 16, 2), "float32"))


@pytest.mark.parametrize("activation", ["leaky_relu", "relu", "elu"])
def test_unit_without_normalisation_computes_the_plain_pre_activation(activation):
    # The unit writes (leaky) ReLU as a select when nothing normalises its input (see
    # medzoo.layers.residual._activate_shared); its output must equal the textbook formula.
    unit = ResidualUnit3D(4, activation=activation, leaky_alpha=0.2, normalization="none")
    x = np.random.default_rng(3).standard_normal((1, 4, 5, 6, 4)).astype("float32")
    out = keras.ops.convert_to_numpy(unit(x))

    def act(v):
        if activation == "leaky_relu":
            return np.where(v > 0, v, 0.2 * v)
        if activation == "relu":
            return np.maximum(v, 0)
        return keras.ops.convert_to_numpy(keras.activations.elu(v))

    h = keras.ops.convert_to_numpy(unit.conv1(act(x)))
    expected = keras.ops.convert_to_numpy(unit.conv2(act(h))) + x
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


_REMAPPER_PROBE = """
import numpy as np
from medzoo.models import SuperResolution3D
model = SuperResolution3D(1, factors=2, filters=4, num_units=2)
model.predict_on_batch(np.zeros((2, 4, 4, 4, 1), np.float32))
"""


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's graph optimiser")
def test_tensorflow_graph_optimiser_rewrites_residual_stacks_without_error():
    # Pre-activation units without normalisation used to make grappler's remapper fail
    # ("remapper failed: INVALID_ARGUMENT: Mutation::Apply error: fanout ... missing node").
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "TF_ENABLE_ONEDNN_OPTS": "1"}
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", _REMAPPER_PROBE], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "remapper failed" not in done.stderr
    assert "meta_optimizer" not in done.stderr


def _randomised(model: keras.Model, seed: int = 1) -> keras.Model:
    """``model`` with every weight drawn N(0, 0.3^2): a zeroed head would hide the activation."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        variable.assign(rng.normal(0.0, 0.3, variable.shape).astype("float32"))
    return model


def _graph_minus_eager(model: keras.Model, x: np.ndarray) -> float:
    graph = np.asarray(model.predict_on_batch(x))
    eager = keras.ops.convert_to_numpy(model(x, training=False))
    return float(np.abs(graph - eager).max())


def test_select_leaky_relu_is_keras_leaky_relu():
    x = np.linspace(-3, 3, 61, dtype="float32").reshape(1, 61)
    expected = keras.layers.LeakyReLU(negative_slope=0.1)(x)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(SelectLeakyReLU(negative_slope=0.1)(x)),
        keras.ops.convert_to_numpy(expected),
    )


@pytest.mark.parametrize("baseline", ["linear", "bspline"])
def test_super_resolution_predicts_in_a_graph_what_it_computes_eagerly(baseline):
    # TensorFlow + oneDNN fused conv + bias + residual sum + LeakyRelu and lost the slope (0.2
    # instead of 0.1): srnet3d_ixi's predictions were up to 0.09 off (data range 1).
    from medzoo.models import SuperResolution3D

    model = _randomised(SuperResolution3D(1, factors=2, filters=4, num_units=1, baseline=baseline))
    x = np.random.default_rng(0).random((2, 6, 6, 6, 1)).astype("float32")
    assert _graph_minus_eager(model, x) < 1e-4


def test_published_super_resolution_presets_predict_in_a_graph_what_they_compute_eagerly():
    # The presets' config.json name keras.layers.LeakyReLU; loading reads it as SelectLeakyReLU.
    import medzoo

    x = np.random.default_rng(0).random((1, 6, 6, 6, 1)).astype("float32")
    for version in ("1.0.0", "2.0.0", "3.0.0"):
        model = medzoo.load("srnet3d_ixi", version=version)
        assert isinstance(model.get_layer("head_act"), SelectLeakyReLU)
        assert _graph_minus_eager(model, x) < 1e-5, version
