"""The preset directory: save/load round trip on a real scan, refusal of code and unregistered
classes, fine-tuning with another class count, and freezing the encoder."""

import json
import logging
import shutil

import h5py
import keras
import numpy as np
import pytest
from hub_servers import METRICS, TRAINING, real_input, tiny_unet

import medzoo
import medzoo.losses
from medzoo.hub import (
    UnsafePresetError,
    VersionExistsError,
    freeze_encoder,
    load_preset,
    save_preset,
)

SAVE = {"version": "1.0.0", "metrics": METRICS, "training_data": TRAINING, "license": "MIT"}


@pytest.fixture(scope="module")
def unet_preset(tmp_path_factory):
    """A saved tiny U-Net, the model itself and its prediction on the real scan."""
    model = tiny_unet()
    folder = save_preset(model, tmp_path_factory.mktemp("presets") / "unet", **SAVE)
    return folder, model, model.predict(real_input(), verbose=0)


def test_save_then_load_gives_identical_predictions_and_the_spec(unet_preset):
    folder, model, expected = unet_preset
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "metadata.json",
        "model.weights.h5",
    ]
    loaded = medzoo.load(folder)
    np.testing.assert_array_equal(loaded.predict(real_input(), verbose=0), expected)
    as_json = [json.dumps(m.medzoo_spec.to_dict(), sort_keys=True) for m in (loaded, model)]
    assert as_json[0] == as_json[1]

    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["name"] == "unet3d_mrbrains" and metadata["version"] == "1.0.0"
    assert metadata["parameters"] == model.count_params()
    assert metadata["keras_version"] == keras.__version__
    assert metadata["medzoo_version"] == medzoo.__version__
    assert metadata["spec"]["input"]["spacing_mm"] == [1.0, 1.0, 1.0]
    assert metadata["metrics"] == METRICS and metadata["training_data"] == TRAINING
    assert metadata["license"] == "MIT" and metadata["command"]
    card = (folder / "README.md").read_text()
    assert (
        "Measured on: two synthetic test volumes\n\n"
        "| metric | value |\n|---|---|\n| dice_mean | 0.5 |" in card
    )
    assert "license: mit" in card and 'medzoo.load("unet3d_mrbrains", version="1.0.0")' in card


def test_a_preset_folder_is_never_overwritten(unet_preset):
    folder, model, _ = unet_preset
    before = (folder / "model.weights.h5").read_bytes()
    with pytest.raises(VersionExistsError, match="already exists and is not empty"):
        save_preset(model, folder, **SAVE)
    assert (folder / "model.weights.h5").read_bytes() == before


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"metrics": {"dice": 0.8}}, "metrics['dice']"),
        ({"metrics": {"dice": {"value": 0.8}}}, "metrics['dice']"),
        ({"metrics": {}}, "metrics must be a non-empty mapping"),
        ({"training_data": ""}, "training_data"),
        ({"license": ""}, "license"),
        ({"version": "1.0"}, "version '1.0'"),
    ],
)
def test_save_refuses_incomplete_provenance(tmp_path, unet_preset, change, named):
    _, model, _ = unet_preset
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("]", r"\]")):
        save_preset(model, tmp_path / "p", **{**SAVE, **change})
    assert not (tmp_path / "p").exists()


def _lambda_model():
    inputs = keras.Input((None, None, None, 1))
    outputs = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs)
    model = keras.Model(inputs, outputs, name="unet3d_mrbrains")
    return medzoo.registry.attach_spec(model, medzoo.get_spec("unet3d_mrbrains"))


def test_a_lambda_layer_is_refused_when_saving_and_when_loading(tmp_path, unet_preset):
    with pytest.raises(UnsafePresetError, match="Lambda layer 'double'"):
        save_preset(_lambda_model(), tmp_path / "never", **SAVE)
    assert not (tmp_path / "never").exists()

    folder = tmp_path / "evil"
    shutil.copytree(unet_preset[0], folder)
    config = keras.saving.serialize_keras_object(_lambda_model())
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsafePresetError, match="runs Python code stored in the checkpoint"):
        medzoo.load(folder)


def test_an_unregistered_class_is_refused_before_deserialising(tmp_path, unet_preset):
    folder = tmp_path / "foreign"
    shutil.copytree(unet_preset[0], folder)
    text = (folder / "config.json").read_text()
    text = text.replace('"module": "medzoo.layers.upsampling"', '"module": "evil.layers"', 1)
    text = text.replace(
        '"registered_name": "medzoo>LinearUpsampling3D"', '"registered_name": "evil>X"', 1
    )
    (folder / "config.json").write_text(text)
    with pytest.raises(UnsafePresetError) as err:
        medzoo.load(folder)
    message = str(err.value)
    assert "config.json" in message and "'evil.layers'" in message and "'evil>X'" in message
    assert "config.layers[" in message  # where in the config


def test_fine_tuning_keeps_the_body_and_logs_the_fresh_head(unet_preset, caplog):
    folder, model, _ = unet_preset
    with caplog.at_level(logging.WARNING, logger="medzoo.hub.finetune"):
        tuned = load_preset(folder, num_classes=3)
    assert tuned.output_shape[-1] == 3
    assert "head_logits (pretrained 1x1x1x4x9, 9, now 1x1x1x4x3, 3)" in caplog.text
    for layer in model.layers:
        if layer.weights and layer.name != "head_logits":
            for old, new in zip(
                layer.get_weights(), tuned.get_layer(layer.name).get_weights(), strict=True
            ):
                np.testing.assert_array_equal(old, new)
    spec = tuned.medzoo_spec
    assert spec.config["num_classes"] == 3
    assert spec.output.labels == {0: "class 0", 1: "class 1", 2: "class 2"}
    probabilities = tuned.predict(real_input(), verbose=0)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)


def test_a_trained_compiled_model_is_saved_without_its_optimizer_state(tmp_path):
    model = tiny_unet()
    model.compile(optimizer="adam", loss=medzoo.losses.DiceCrossEntropy())
    x = real_input()
    model.train_on_batch(x, np.zeros(x.shape[:-1], "int32"))
    folder = save_preset(model, tmp_path / "trained", **SAVE)
    with h5py.File(folder / "model.weights.h5") as weights:
        assert "optimizer" not in weights
    loaded = medzoo.load(folder)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_fine_tuning_a_resnet_replaces_its_dense_head(tmp_path, caplog):
    model = medzoo.build("resnet3d_ixi_sex", filters=(8, 8, 8, 8))  # 8 normalisation groups
    folder = save_preset(model, tmp_path / "sex", **SAVE)
    with caplog.at_level(logging.WARNING, logger="medzoo.hub.finetune"):
        tuned = medzoo.load(folder, num_classes=4)
    assert tuned.output_shape == (None, 4)
    assert "head_dense" in caplog.text and "encoder_" not in caplog.text
    np.testing.assert_array_equal(
        tuned.get_layer("encoder_stem").get_weights()[0],
        model.get_layer("encoder_stem").get_weights()[0],
    )


def test_a_body_layer_that_does_not_fit_is_an_error(tmp_path, unet_preset):
    folder = tmp_path / "mismatch"
    shutil.copytree(unet_preset[0], folder)
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["spec"]["config"]["filters"] = [8, 4, 4, 4]  # disagrees with config.json
    (folder / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match="body layers do not fit") as err:
        load_preset(folder, num_classes=3)
    assert "encoder_l0_conv0 (pretrained 3x3x3x1x4, now 3x3x3x1x8)" in str(err.value)


def test_num_classes_is_refused_for_models_without_classes(tmp_path):
    model = medzoo.build("srnet3d_ixi", filters=4, num_units=1)
    folder = save_preset(model, tmp_path / "sr", **SAVE)
    with pytest.raises(ValueError, match="has no class count to change"):
        load_preset(folder, num_classes=3)


def test_freeze_encoder_freezes_only_the_encoder_and_can_undo_it(unet_preset):
    model = tiny_unet()
    trainable = len(model.trainable_weights)
    names = freeze_encoder(model)
    assert names and all(n.startswith("encoder_") for n in names)
    assert all(not model.get_layer(n).trainable for n in names)
    assert (
        model.get_layer("decoder_l0_conv0").trainable and model.get_layer("head_logits").trainable
    )
    assert 0 < len(model.trainable_weights) < trainable
    freeze_encoder(model, frozen=False)
    assert len(model.trainable_weights) == trainable


def test_freeze_encoder_handles_the_nested_autoencoder_encoder():
    model = medzoo.build(
        "cae3d_ixi", filters=(8, 8), strides=(2, 2), input_shape=(8, 8, 8), latent_dim=4
    )
    assert freeze_encoder(model) == ["encoder"]
    assert not model.get_layer("encoder").trainable and model.get_layer("decoder").trainable
    with pytest.raises(ValueError, match="no layers named encoder_"):
        freeze_encoder(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
