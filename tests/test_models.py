"""Every registered model builds, predicts, trains a step and round-trips through Keras files
with identical outputs (run on TensorFlow and on JAX)."""

import keras
import numpy as np
import pytest

import medzoo
from medzoo.losses import get_loss
from medzoo.models import ConvAutoencoder3D, ResidualUNet3D, ResNet3D, SuperResolution3D
from medzoo.registry import UnknownModelError, get_spec

pytestmark = pytest.mark.backend

# Tiny inputs (z, y, x) per model that respect each model's input-size rule.
TINY = {
    "unet3d_mrbrains": ((16, 16, 16), {}),
    "resnet3d_ixi_age": ((8, 8, 8), {}),
    "resnet3d_ixi_sex": ((8, 8, 8), {}),
    "cae3d_ixi": ((16, 16, 16), {"input_shape": (16, 16, 16)}),
    "srnet3d_ixi": ((3, 4, 5), {}),
}


def test_list_models_names_the_five_applications():
    assert medzoo.list_models() == sorted(TINY)


def _batch(name, shape, rng):
    spec = get_spec(name)
    x = rng.uniform(size=(2, *shape, len(spec.input.channels))).astype("float32")
    if spec.task == "segmentation":
        y = rng.integers(0, spec.config["num_classes"], size=(2, *shape))
    elif spec.task == "regression":
        y = np.array([[30.0], [60.0]], "float32")
    elif spec.task == "classification":
        y = np.eye(2, dtype="float32")
    elif spec.task == "super_resolution":
        factors = spec.config["factors"]
        fine = tuple(s * f for s, f in zip(shape, factors, strict=True))
        y = rng.uniform(size=(2, *fine, 1)).astype("float32")
    else:
        y = x
    return x, y


@pytest.mark.parametrize("name", sorted(TINY))
def test_registered_model_builds_trains_and_round_trips(name, tmp_path):
    shape, overrides = TINY[name]
    spec = get_spec(name)
    model = medzoo.build(name, **overrides)
    rng = np.random.default_rng(0)
    x, y = _batch(name, shape, rng)

    out = keras.ops.convert_to_numpy(model(x))
    expected_shape = {
        "segmentation": (2, *shape, spec.config.get("num_classes", 0)),
        "regression": (2, 1),
        "classification": (2, 2),
        "autoencoder": x.shape,
        "super_resolution": y.shape,
    }[spec.task]
    assert out.shape == expected_shape
    assert np.isfinite(out).all()
    if spec.task in ("segmentation", "classification"):
        np.testing.assert_allclose(out.sum(axis=-1), 1.0, atol=1e-5)

    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=get_loss(spec.loss))
    weights_before = [w.copy() for w in model.get_weights()]
    # Two steps: super-resolution's zero-initialised residual head passes gradients on from the
    # second step.
    for _ in range(2):
        loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    changed = [
        not np.array_equal(a, b) for a, b in zip(weights_before, model.get_weights(), strict=True)
    ]
    assert sum(changed) > len(changed) // 2

    reference = keras.ops.convert_to_numpy(model.predict(x, verbose=0))
    keras_path = tmp_path / f"{name}.keras"
    model.save(keras_path)
    reloaded = keras.saving.load_model(keras_path, safe_mode=True, compile=False)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), reference, rtol=1e-5, atol=1e-5)

    weights_path = tmp_path / f"{name}.weights.h5"
    model.save_weights(weights_path)
    fresh = medzoo.build(name, **overrides)
    fresh.load_weights(weights_path)
    np.testing.assert_allclose(fresh.predict(x, verbose=0), reference, rtol=1e-5, atol=1e-5)


def test_unknown_model_name_lists_close_matches():
    with pytest.raises(UnknownModelError, match="Did you mean 'unet3d_mrbrains'"):
        medzoo.build("unet3d_mrbrain")


def test_build_overrides_and_rejects_unknown_keys():
    model = medzoo.build("unet3d_mrbrains", num_classes=4, filters=(4, 8, 8, 8))
    assert model.output_shape[-1] == 4
    with pytest.raises(ValueError, match="does not take num_clases"):
        medzoo.build("unet3d_mrbrains", num_clases=4)


def test_unet_rejects_sizes_its_strides_cannot_divide():
    model = medzoo.build("unet3d_mrbrains", filters=(4, 4, 4, 4))
    with pytest.raises(
        ValueError, match=r"not a multiple of the network's total stride \(8, 8, 8\)"
    ):
        model(np.zeros((1, 5, 16, 16, 3), "float32"))
    with pytest.raises(ValueError, match=r"Expected 3 input channels \(T1, T1_IR, T2_FLAIR\)"):
        model(np.zeros((1, 4, 16, 16, 1), "float32"))


def test_unet_learned_upsampling_and_anisotropic_strides():
    model = ResidualUNet3D(
        1, 3, filters=(4, 8, 8), strides=(1, (1, 2, 2), (2, 2, 2)), upsampling="learned"
    )
    assert tuple(model.get_layer("size_check").multiple) == (2, 4, 4)
    assert model(np.zeros((1, 2, 8, 12, 1), "float32")).shape == (1, 2, 8, 12, 3)
    assert any(layer.name == "decoder_l0_up" for layer in model.layers)


def test_resnet_regression_output_is_in_target_units():
    model = ResNet3D(1, filters=(4, 8), strides=(1, 2), output_scale=20.0, output_offset=50.0)
    model.get_layer("head_dense").set_weights([np.zeros((8, 1)), np.zeros(1)])
    np.testing.assert_allclose(model(np.ones((1, 8, 8, 8, 1), "float32")), [[50.0]])


def test_autoencoder_encoder_and_decoder_work_on_their_own():
    model = ConvAutoencoder3D(2, (16, 16, 16), latent_dim=7, filters=(4, 8), strides=(2, 2))
    x = np.random.default_rng(0).uniform(size=(1, 16, 16, 16, 2)).astype("float32")
    latent = model.get_layer("encoder")(x)
    assert latent.shape == (1, 7)
    decoded = keras.ops.convert_to_numpy(model.get_layer("decoder")(latent))
    np.testing.assert_allclose(decoded, keras.ops.convert_to_numpy(model(x)), atol=1e-5)
    with pytest.raises(ValueError, match="multiple of the total stride"):
        ConvAutoencoder3D(1, (15, 16, 16), filters=(4, 8), strides=(2, 2))


@pytest.mark.parametrize(
    ("baseline", "layer"), [("linear", "baseline_trilinear"), ("bspline", "baseline_bspline")]
)
def test_super_resolution_starts_as_its_baseline_interpolation(baseline, layer):
    kwargs = {} if baseline == "linear" else {"baseline": baseline}  # linear is the default
    model = SuperResolution3D(1, factors=(2, 2, 4), filters=4, num_units=1, **kwargs)
    x = np.random.default_rng(0).uniform(size=(1, 3, 4, 5, 1)).astype("float32")
    out = keras.ops.convert_to_numpy(model(x))
    expected = keras.ops.convert_to_numpy(model.get_layer(layer)(x))
    assert out.shape == (1, 6, 8, 20, 1)
    np.testing.assert_allclose(out, expected, atol=1e-6)  # zero-initialised residual head
    other = "baseline_bspline" if baseline == "linear" else "baseline_trilinear"
    assert other not in [lay.name for lay in model.layers]


def test_registry_super_resolution_corrects_bspline_and_old_presets_stay_trilinear():
    # 3.x (the registry's configuration) adds its residual to B-spline interpolation; the
    # committed 1.x / 2.x presets keep their trilinear baseline (their config.json), so they load
    # and compute exactly what they did: the same as a linear build with their weights.
    from pathlib import Path

    assert medzoo.get_spec("srnet3d_ixi").config["baseline"] == "bspline"
    assert medzoo.build("srnet3d_ixi").get_layer("baseline_bspline") is not None
    folder = Path(__file__).resolve().parents[1] / "weights/srnet3d_ixi/2.0.0"
    published = medzoo.load(folder)
    assert "baseline_bspline" not in [layer.name for layer in published.layers]
    rebuilt = medzoo.build("srnet3d_ixi", baseline="linear")
    rebuilt.load_weights(folder / "model.weights.h5")
    x = np.random.default_rng(1).uniform(size=(1, 6, 6, 6, 1)).astype("float32")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(published(x)), keras.ops.convert_to_numpy(rebuilt(x))
    )


@pytest.mark.parametrize(
    ("builder", "kwargs", "message"),
    [
        (
            ResidualUNet3D,
            dict(in_channels=1, num_classes=2, strides=(1, 2)),
            "one stride per level",
        ),
        (ResidualUNet3D, dict(in_channels=1, num_classes=2, upsampling="cubic"), "upsampling"),
        (ResidualUNet3D, dict(in_channels=1, num_classes=2, activation="nope"), "activation"),
        (ResNet3D, dict(in_channels=1, task="segmentation"), "task must be one of"),
        (ResNet3D, dict(in_channels=1, task="classification", num_outputs=1), "num_outputs >= 2"),
        (SuperResolution3D, dict(in_channels=1, factors=(2, 0, 2)), "factors must be"),
        (SuperResolution3D, dict(in_channels=1, baseline="cubic"), "baseline must be one of"),
    ],
)
def test_builders_reject_bad_arguments(builder, kwargs, message):
    with pytest.raises(ValueError, match=message):
        builder(**kwargs)


def test_spec_travels_with_the_model_and_round_trips_through_json():
    import json

    from medzoo.registry import ModelSpec, spec_of

    spec = get_spec("unet3d_mrbrains")
    again = ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert (again.input, again.output, again.builder) == (spec.input, spec.output, spec.builder)
    assert json.dumps(again.to_dict()) == json.dumps(spec.to_dict())
    model = medzoo.build("unet3d_mrbrains", num_classes=3, filters=(4, 4, 4, 4))
    assert spec_of(model).output.labels == {0: "class 0", 1: "class 1", 2: "class 2"}
    assert spec_of(model).config["num_classes"] == 3
    assert spec_of(medzoo.build("srnet3d_ixi")).input.spacing_mm == (4.0, 4.0, 4.0)
