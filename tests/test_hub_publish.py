"""Publishing to a folder and to a Hugging Face Hub (a real server on 127.0.0.1 speaking the
protocol huggingface_hub uses), then loading what was published."""

import json
import logging

import numpy as np
import pytest
from hub_servers import METRICS, TRAINING, FakeHub, real_input, tiny_unet

import medzoo
from medzoo.cli import main
from medzoo.hub import VersionExistsError, WeightsUnavailableError, publish, read_manifest
from medzoo.hub.manifest import BundledSource, HfSource

NAME = "unet3d_mrbrains"
ARGS = {"metrics": METRICS, "training_data": TRAINING, "license": "CC-BY-4.0"}


@pytest.fixture(scope="module")
def trained():
    """A tiny U-Net standing in for a trained one, and its prediction on the real scan."""
    model = tiny_unet()
    return model, model.predict(real_input(), verbose=0)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for var in ("MEDZOO_OFFLINE", "HF_HUB_OFFLINE", "MEDZOO_MANIFEST", "HF_TOKEN"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def hub(monkeypatch):
    with FakeHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def test_publish_into_the_repository_then_load_the_bundled_copy(tmp_path, trained):
    model, expected = trained
    manifest = tmp_path / "repo" / "weights_manifest.json"
    done = publish(
        model, tmp_path / "repo" / "weights", version="1.0.0", update_manifest=manifest, **ARGS
    )
    assert done.location == str(tmp_path / "repo" / "weights" / NAME / "1.0.0")
    assert done.entry.sources == (BundledSource(f"weights/{NAME}/1.0.0"),)
    listed = read_manifest(manifest).models[NAME]
    assert listed.task == "segmentation" and listed.default_version == "1.0.0"
    assert listed.versions["1.0.0"] == done.entry
    weights = tmp_path / "repo" / "weights" / NAME / "1.0.0" / "model.weights.h5"
    assert done.entry.files["model.weights.h5"].size == weights.stat().st_size

    loaded = medzoo.load(NAME, manifest=manifest, offline=True)
    np.testing.assert_array_equal(loaded.predict(real_input(), verbose=0), expected)


def test_a_published_folder_is_never_overwritten(tmp_path, trained):
    model, _ = trained
    first = publish(model, tmp_path, version="1.0.0", **ARGS)
    before = (tmp_path / NAME / "1.0.0" / "metadata.json").read_bytes()
    with pytest.raises(VersionExistsError, match=r"already published at .*1\.0\.0"):
        publish(model, tmp_path, version="1.0.0", **ARGS)
    assert (tmp_path / NAME / "1.0.0" / "metadata.json").read_bytes() == before
    assert first.entry.files["metadata.json"].size == len(before)


def test_a_folder_outside_the_manifest_folder_cannot_be_a_bundled_source(tmp_path, trained):
    model, _ = trained
    with pytest.raises(ValueError, match=r"outside .*the folder of the manifest"):
        publish(
            model,
            tmp_path / "elsewhere",
            version="1.0.0",
            update_manifest=tmp_path / "repo" / "m.json",
            **ARGS,
        )
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "repo" / "m.json").exists()


def test_publish_needs_the_provenance_of_a_model(tmp_path, trained):
    with pytest.raises(ValueError, match="needs metrics, training_data, license"):
        publish(trained[0], tmp_path, version="1.0.0")
    with pytest.raises(ValueError, match="cannot be given"):
        publish(tmp_path / "preset", tmp_path / "out", version="1.0.0")


def test_publish_to_the_hub_then_load_identical_predictions(tmp_path, trained, hub):
    model, expected = trained
    manifest = tmp_path / "m.json"
    done = publish(
        model, "hf://medzoo/tiny-unet", version="1.0.0", update_manifest=manifest, **ARGS
    )
    assert done.commit == hub.repos["medzoo/tiny-unet"][-1][0]
    assert done.location == f"hf://medzoo/tiny-unet@{done.commit}"
    assert done.entry.sources == (HfSource("medzoo/tiny-unet", "", done.commit),)
    committed = hub.repos["medzoo/tiny-unet"][-1][1]
    assert json.loads(committed["metadata.json"])["version"] == "1.0.0"
    assert "## Evaluation" in committed["README.md"].decode()

    before = hub.count()
    loaded = medzoo.load(NAME, manifest=manifest)
    np.testing.assert_array_equal(loaded.predict(real_input(), verbose=0), expected)
    resolved = [r for r in hub.requests[before:] if "/resolve/" in r[1]]
    assert resolved and all(f"/resolve/{done.commit}/" in r[1] for r in resolved)

    # A complete cache: no request at all, even with HF_HUB_OFFLINE unset.
    before = hub.count()
    medzoo.load(NAME, manifest=manifest)
    assert hub.count() == before


def test_the_hub_refuses_a_republished_version_and_pins_each_commit(tmp_path, trained, hub):
    model, expected = trained
    manifest = tmp_path / "m.json"
    first = publish(model, "hf://medzoo/unet/v", version="1.0.0", update_manifest=manifest, **ARGS)
    with pytest.raises(VersionExistsError, match=r"1\.0\.0 is already published at hf://"):
        publish(model, "hf://medzoo/unet/v", version="1.0.0", **ARGS)
    assert len(hub.repos["medzoo/unet"]) == 2  # the initial commit and the first publication

    newer = tiny_unet()
    second = publish(newer, "hf://medzoo/unet/v", version="1.1.0", update_manifest=manifest, **ARGS)
    assert second.commit != first.commit
    assert read_manifest(manifest).models[NAME].default_version == "1.1.0"
    # Version 1.0.0 still loads its own bytes from its pinned commit, not from main.
    old = medzoo.load(NAME, "1.0.0", manifest=manifest)
    np.testing.assert_array_equal(old.predict(real_input(), verbose=0), expected)
    new = medzoo.load(NAME, manifest=manifest)
    np.testing.assert_array_equal(
        new.predict(real_input(), verbose=0), newer.predict(real_input(), verbose=0)
    )


def test_hub_offline_without_cache_names_the_file_and_calls_nothing(
    tmp_path, trained, hub, monkeypatch
):
    manifest = tmp_path / "m.json"
    publish(trained[0], "hf://medzoo/off", version="1.0.0", update_manifest=manifest, **ARGS)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = hub.count()
    with pytest.raises(WeightsUnavailableError, match=r"model\.weights\.h5"):
        medzoo.load(NAME, manifest=manifest)
    assert hub.count() == before


def test_cli_publishes_a_preset_to_the_hub_as_a_second_source(tmp_path, trained, hub, capsys):
    manifest = tmp_path / "repo" / "weights_manifest.json"
    publish(
        trained[0], tmp_path / "repo" / "weights", version="1.0.0", update_manifest=manifest, **ARGS
    )
    preset = tmp_path / "repo" / "weights" / NAME / "1.0.0"
    args = ["publish", str(preset), "hf://medzoo/mirror", "--update-manifest", str(manifest)]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    sources = [s.uri for s in read_manifest(manifest).models[NAME].versions["1.0.0"].sources]
    assert sources == [f"weights/{NAME}/1.0.0", f"hf://medzoo/mirror@{result['commit']}"]
    assert (
        hub.repos["medzoo/mirror"][-1][1]["model.weights.h5"]
        == (preset / "model.weights.h5").read_bytes()
    )

    assert main(args) == 2  # the same version again
    assert "already published" in capsys.readouterr().err


def test_cli_publishes_a_candidate_without_making_it_the_default(tmp_path, trained, caplog):
    manifest = tmp_path / "repo" / "weights_manifest.json"
    publish(
        trained[0], tmp_path / "repo" / "weights", version="1.0.0", update_manifest=manifest, **ARGS
    )
    candidate = tmp_path / "candidate"
    publish(tiny_unet(), candidate, version="3.0.0", **ARGS)
    preset = candidate / NAME / "3.0.0"
    dest = tmp_path / "repo" / "weights"
    args = ["publish", str(preset), str(dest), "--update-manifest", str(manifest)]
    with caplog.at_level(logging.INFO, logger="medzoo.hub.publishing"):
        assert main([*args, "--keep-default"]) == 0
    listed = read_manifest(manifest).models[NAME]
    assert listed.default_version == "1.0.0" and "3.0.0" in listed.versions
    assert "default version stays 1.0.0" in caplog.text
    with pytest.raises(SystemExit):  # argparse: not both
        main([*args, "--keep-default", "--make-default"])
