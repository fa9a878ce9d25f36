"""The training scripts: a few steps of each on tiny synthetic heads, resuming, the real-dataset
layouts, and the geometry of the super-resolution pairs.

Each script runs in-process (``runpy``, as ``python training/<name>.py`` would) with tiny
patches, one synthetic subject and no augmentation, so its loss must fall within ten steps; the
preset it publishes must load with ``safe_mode`` and hold exactly the best checkpoint.
"""

from __future__ import annotations

import csv
import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

import medzoo
from medzoo.assets import asset
from medzoo.io import Geometry, array_to_image, write_image
from medzoo.registry import build, get_spec
from medzoo.synth import SynthConfig, Synthesizer
from medzoo.train.sources import downsample
from medzoo.train.tasks import model_io

ROOT = Path(__file__).resolve().parents[1]

# Tiny settings per script: (network input patch, synthetic field of view in mm, batch size).
TINY = {
    "unet3d_mrbrains": ("16,32,32", "64,64,48", 2),
    "resnet3d_ixi_age": ("32,32,32", "96,96,96", 4),
    "resnet3d_ixi_sex": ("32,32,32", "96,96,96", 4),
    "cae3d_ixi": (None, "96,96,96", 1),  # fixed input size 64x80x64
    "srnet3d_ixi": ("8,8,8", "48,48,48", 4),
}


def run_script(name: str, *args: str) -> int:
    """``python training/<name>.py args`` in this process; returns its exit code."""
    argv = sys.argv
    sys.argv = [str(ROOT / "training" / f"{name}.py"), *args]
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit as stop:
        return int(stop.code or 0)
    finally:
        sys.argv = argv
    return 0


def tiny_args(name: str, out: Path, steps: int = 10, **extra: str) -> list[str]:
    patch, fov, batch = TINY[name]
    args = ["--steps", str(steps), "--val-every", str(steps), "--log-every", "1"]
    args += ["--subjects", "1", "--no-augment", "--val-cases", "1", "--test-cases", "1"]
    args += ["--fov-mm", fov, "--batch-size", str(batch), "--out", str(out), "-q"]
    if patch:
        args += ["--patch", patch]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", value]
    return args


def losses(run: Path) -> list[float]:
    with (run / "log.csv").open() as f:
        return [float(row["loss"]) for row in csv.DictReader(f) if row["loss"]]


@pytest.mark.parametrize("name", sorted(TINY))
def test_training_script_learns_and_publishes_a_loadable_preset(name, tmp_path):
    out = tmp_path / "run"
    assert run_script(name, *tiny_args(name, out)) == 0

    curve = losses(out)
    assert len(curve) == 10
    assert np.mean(curve[-3:]) < np.mean(curve[:3]), curve

    result = json.loads((out / "result.json").read_text())
    preset = Path(result["preset"])
    assert preset == out / "presets" / name / "1.0.0"
    metadata = json.loads((preset / "metadata.json").read_text())
    assert {k: v["value"] for k, v in metadata["metrics"].items()} == pytest.approx(
        result["test_metrics"], abs=1e-5
    )
    assert metadata["training_data"]["name"] == "medzoo synthetic heads"
    assert metadata["training_data"]["seconds_per_step"] > 0
    assert metadata["training_data"]["steps"] == 10

    # The preset is the best checkpoint, and loads with safe_mode on.
    loaded = medzoo.load(str(preset))
    reference = build(name)
    reference.load_weights(out / "checkpoint" / "best.weights.h5")
    spec = get_spec(name)
    given = TINY[name][0]
    patch = spec.input.patch_size if given is None else tuple(int(v) for v in given.split(","))
    x = np.random.default_rng(0).random((1, *patch, len(spec.input.channels)), np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), reference.predict(x, verbose=0))
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))


def test_resume_continues_the_run_and_a_rerun_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    name = "resnet3d_ixi_age"
    assert run_script(name, *tiny_args(name, out, steps=4)) == 0
    assert run_script(name, *tiny_args(name, out, steps=4)) == 2
    assert "pass --resume" in capsys.readouterr().err

    args = tiny_args(name, out, steps=6, version="1.0.1")
    assert run_script(name, *args, "--resume") == 0
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["step"] == 6
    with (out / "log.csv").open() as f:
        steps = [int(row["step"]) for row in csv.DictReader(f) if row["loss"]]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert (out / "presets" / name / "1.0.1" / "model.weights.h5").exists()


def test_resume_drops_rows_past_the_checkpoint_and_takes_a_new_learning_rate(tmp_path):
    """A process stopped between checkpoints logged steps the checkpoint does not hold: on resume
    those rows go (the steps are trained again), and --lr sets the rate from the resumed step."""
    import keras

    out = tmp_path / "run"
    name = "resnet3d_ixi_age"
    assert run_script(name, *tiny_args(name, out, steps=4)) == 0
    with (out / "log.csv").open("a", newline="") as f:  # what a stopped process left behind
        csv.writer(f).writerows([[5, 9.0, 1.0], [6, 9.0, 1.0]])
    args = tiny_args(name, out, steps=6, version="1.0.1", lr="2e-4")
    assert run_script(name, *args, "--resume") == 0
    with (out / "log.csv").open() as f:
        rows = [row for row in csv.DictReader(f) if row["loss"]]
    assert [int(row["step"]) for row in rows] == [1, 2, 3, 4, 5, 6]
    assert all(float(row["loss"]) != 9.0 for row in rows)
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["learning_rate_changes"] == [
        {"step": 4, "from": pytest.approx(1e-3), "to": pytest.approx(2e-4)}
    ]
    last = keras.saving.load_model(out / "checkpoint" / "last.keras", safe_mode=True)
    assert float(keras.ops.convert_to_numpy(last.optimizer.learning_rate)) == pytest.approx(2e-4)
    # the same rate again (as a resume script repeats it) is no change to record
    args = tiny_args(name, out, steps=7, version="1.0.2", lr="2e-4")
    assert run_script(name, *args, "--resume") == 0
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert [change["step"] for change in state["learning_rate_changes"]] == [4]
    metadata = json.loads((out / "presets" / name / "1.0.2" / "metadata.json").read_text())
    assert metadata["training_data"]["learning_rate"] == pytest.approx(2e-4)


def test_a_new_run_starts_from_committed_weights_and_counts_on(tmp_path, capsys):
    name = "resnet3d_ixi_age"
    first = tmp_path / "first"
    assert run_script(name, *tiny_args(name, first, steps=3)) == 0
    weights = first / "checkpoint" / "best.weights.h5"
    second = tmp_path / "second"
    args = tiny_args(name, second, steps=5)
    assert run_script(name, *args, "--init-weights", str(weights), "--init-step", "3") == 0
    with (second / "log.csv").open() as f:
        assert [int(r["step"]) for r in csv.DictReader(f) if r["loss"]] == [4, 5]
    metadata = json.loads((second / "presets" / name / "1.0.0" / "metadata.json").read_text())
    assert metadata["training_data"]["init_weights"] == str(weights)
    assert run_script(name, *args, "--init-weights", str(weights), "--resume") == 2
    assert "exclude each other" in capsys.readouterr().err
    assert run_script(name, *tiny_args(name, tmp_path / "x"), "--init-step", "10") == 2
    assert "init_step must be" in capsys.readouterr().err


def test_resume_without_a_checkpoint_says_so(tmp_path, capsys):
    name = "resnet3d_ixi_age"
    assert run_script(name, *tiny_args(name, tmp_path / "none"), "--resume") == 2
    assert "no checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("resnet3d_ixi_age", ["--data", "ixi"], "needs --data-dir"),
        ("resnet3d_ixi_age", ["--data", "mrbrains13", "--data-dir", "x"], "segmentation"),
        ("srnet3d_ixi", ["--data", "ixi", "--data-dir", "x"], "not available"),
        ("unet3d_mrbrains", ["--data", "mrbrains13", "--data-dir", "/nonexistent"], "mrbrains13"),
        ("unet3d_mrbrains", ["--steps", "0"], "steps must be a positive integer"),
    ],
)
def test_bad_arguments_are_named(name, args, message, tmp_path, capsys):
    assert run_script(name, *args, "--out", str(tmp_path / "run"), "-q") == 2
    assert message in capsys.readouterr().err


def synthetic_head(contrasts, shape, spacing, seed):
    sample = Synthesizer(
        SynthConfig(contrasts=contrasts, output_shape=shape, output_spacing=spacing)
    ).sample(seed=seed)
    return sample


def test_trains_on_the_mrbrains13_layout(tmp_path):
    """Two subjects in the challenge's folders (synthetic heads at 0.958 x 0.958 x 3 mm)."""
    data = tmp_path / "MRBrainS13"
    for n in (1, 2):
        folder = data / "TrainingData" / str(n)
        folder.mkdir(parents=True)
        sample = synthetic_head(("T1", "T1_IR", "T2_FLAIR"), (16, 64, 64), (0.958, 0.958, 3.0), n)
        for k, channel in enumerate(("T1", "T1_IR", "T2_FLAIR")):
            image = array_to_image((sample.image[..., k] * 1000).astype(np.int16), sample.geometry)
            write_image(image, folder / f"{channel}.nii")
        labels = array_to_image(sample.labels.astype(np.uint8), sample.geometry)
        write_image(labels, folder / "LabelsForTraining.nii")

    out = tmp_path / "run"
    args = ["--data", "mrbrains13", "--data-dir", str(data), "--steps", "2", "--val-every", "2"]
    args += ["--patch", "16,32,32", "--batch-size", "1", "--out", str(out), "-q"]
    assert run_script("unet3d_mrbrains", *args) == 0
    metadata = json.loads((out / "presets/unet3d_mrbrains/1.0.0/metadata.json").read_text())
    assert metadata["training_data"]["name"] == "MRBrainS13"
    assert metadata["training_data"]["subjects"] == 1  # the other one is held out
    assert "dice_mean" in metadata["metrics"]


def _crop(image: sitk.Image, size: int) -> sitk.Image:
    """A ``size``^3 voxel block around the centre of ``image`` (geometry kept)."""
    start = [(n - size) // 2 for n in image.GetSize()]
    return sitk.RegionOfInterest(image, [size] * 3, start)


def test_trains_on_label_maps_and_validates_on_real_scans(tmp_path):
    """Label maps: a block of the real IBSR head map; real scans: blocks of Colin27 with a
    reference tissue map (a crude threshold, enough to exercise the pipeline)."""

    maps = tmp_path / "maps"
    maps.mkdir()
    block = _crop(sitk.ReadImage(str(asset("atlas/ibsr_head.nii.gz"))), 64)
    sitk.WriteImage(block, str(maps / "head_a.nii.gz"))
    sitk.WriteImage(sitk.Flip(block, [True, False, False]), str(maps / "head_b.nii.gz"))
    refs = tmp_path / "references"
    refs.mkdir()
    t1 = _crop(sitk.ReadImage(str(asset("demo/colin27_t1_1mm.nii.gz"))), 48)
    values = sitk.GetArrayFromImage(t1).astype(np.float32)
    tissues = np.digitize(values, np.percentile(values, [40, 55, 75])).astype(np.uint8)
    entries = []
    for split in ("validation", "test"):
        sitk.WriteImage(t1, str(refs / f"{split}_t1.nii.gz"))
        tissue_image = sitk.GetImageFromArray(tissues)
        tissue_image.CopyInformation(t1)
        sitk.WriteImage(tissue_image, str(refs / f"{split}_tissues.nii.gz"))
        entries.append(
            {
                "name": f"colin_{split}",
                "scan": f"{split}_t1.nii.gz",
                "split": split,
                "tissues": f"{split}_tissues.nii.gz",
            }
        )
    (refs / "cases.json").write_text(json.dumps(entries))

    out = tmp_path / "run"
    args = ["--data", "labelmaps", "--data-dir", str(maps), "--reference-dir", str(refs)]
    args += ["--steps", "4", "--val-every", "2", "--patch", "16,16,16", "--batch-size", "2"]
    args += ["--snapshots", "--out", str(out), "-q"]
    assert run_script("unet3d_mrbrains", *args) == 0
    metadata = json.loads((out / "presets/unet3d_mrbrains/1.0.0/metadata.json").read_text())
    provenance = metadata["training_data"]
    assert sorted(provenance["label_maps"]) == [
        "head_a.nii.gz",
        "head_b.nii.gz",
        "ibsr_head.nii.gz",
    ]
    assert all(len(h) == 64 for h in provenance["label_maps"].values())  # sha256 of each file
    assert provenance["real_reference_scans"]["colin_test"]["split"] == "test"
    assert {"dice_gm", "dice_wm", "dice_csf", "outside_brain_ml"} <= set(metadata["metrics"])
    assert "colin_test/dice_gm" in metadata["metrics"]
    with (out / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows if r["val_dice_tissues"]] == ["2", "4"]
    assert sorted(p.name for p in (out / "checkpoint").glob("step_*")) == [
        "step_000002.weights.h5",
        "step_000004.weights.h5",
    ]


def test_trains_on_prepared_ixi(tmp_path):
    """A folder as training/datasets/ixi.py leaves it: subjects.csv with T1 paths, age, sex."""
    data = tmp_path / "ixi"
    rows = []
    for n, (age, sex) in enumerate([(25.0, 0), (47.5, 1), (71.0, 1), (60.0, 0)]):
        sample = synthetic_head(("T1",), (32, 32, 32), (3.0, 3.0, 3.0), n)
        path = data / f"IXI{n:03d}" / "T1.nii.gz"
        path.parent.mkdir(parents=True)
        write_image(array_to_image(sample.image[..., 0], sample.geometry), path)
        rows.append({"name": f"IXI{n:03d}", "T1": str(path), "age": age, "sex": sex})
    with (data / "subjects.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ["name", "T1", "age", "sex"])
        writer.writeheader()
        writer.writerows(rows)

    out = tmp_path / "run"
    args = ["--data", "ixi", "--data-dir", str(data), "--steps", "2", "--val-every", "2"]
    args += ["--patch", "32,32,32", "--batch-size", "2", "--out", str(out), "-q"]
    assert run_script("resnet3d_ixi_age", *args) == 0
    metadata = json.loads((out / "presets/resnet3d_ixi_age/1.0.0/metadata.json").read_text())
    assert metadata["training_data"]["name"] == "IXI"
    assert metadata["training_data"]["subjects"] == 3
    assert metadata["metrics"]["mae"]["value"] >= 0


def test_downsample_is_a_block_mean_whose_grid_covers_the_same_space():
    fine_geometry = Geometry(
        origin=(10.0, -20.0, 5.0),
        spacing=(1.0, 1.0, 1.0),
        direction=(0, 1, 0, -1, 0, 0, 0, 0, 1),  # a rotated grid
        size=(8, 12, 4),
    )
    ramp = np.arange(4 * 12 * 8, dtype=np.float32).reshape(4, 12, 8)
    fine = array_to_image(ramp, fine_geometry)
    coarse = downsample(fine, (2, 4, 4))
    assert coarse.GetSize() == (2, 3, 2)
    assert coarse.GetSpacing() == (4.0, 4.0, 2.0)
    expected = ramp.reshape(2, 2, 3, 4, 2, 4).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(sitk.GetArrayFromImage(coarse), expected)
    # Outer voxel corners coincide: index -0.5 and size - 0.5 map to the same points.
    for image in (fine, coarse):
        low = image.TransformContinuousIndexToPhysicalPoint([-0.5] * 3)
        high = image.TransformContinuousIndexToPhysicalPoint([s - 0.5 for s in image.GetSize()])
        if image is fine:
            corners = (low, high)
        else:
            np.testing.assert_allclose(low, corners[0], atol=1e-9)
            np.testing.assert_allclose(high, corners[1], atol=1e-9)


def test_super_resolution_pairs_match_the_network_factors():
    spec = get_spec("srnet3d_ixi")
    fine = np.random.default_rng(1).random((2, 16, 16, 16, 1), np.float32)
    x, y = model_io(spec)((fine, None))
    assert x.shape == (2, 4, 4, 4, 1)
    assert y is fine
    np.testing.assert_allclose(x[0, 0, 0, 0, 0], fine[0, :4, :4, :4, 0].mean(), rtol=1e-6)


def _sr_references(tmp_path: Path, size: int = 32) -> tuple[Path, Path]:
    """A training folder with a block of the real ICBM-like head (here: a flipped Colin27
    block, a stand-in) and a reference folder with a held-out Colin27 block per split."""
    colin = sitk.ReadImage(str(asset("demo/colin27_t1_1mm.nii.gz")))
    data = tmp_path / "real"
    data.mkdir()
    train_block = sitk.Flip(_crop(colin, size + 8), [True, False, False])
    sitk.WriteImage(train_block, str(data / "train_head.nii.gz"))
    refs = tmp_path / "references"
    refs.mkdir()
    block = _crop(colin, size)
    tissues = sitk.Cast(block > 60, sitk.sitkUInt8)
    entries = []
    for split in ("validation", "test"):
        sitk.WriteImage(block, str(refs / f"{split}_t1.nii.gz"))
        sitk.WriteImage(tissues, str(refs / f"{split}_tissues.nii.gz"))
        entries.append(
            {
                "name": f"colin_{split}",
                "scan": f"{split}_t1.nii.gz",
                "split": split,
                "tissues": f"{split}_tissues.nii.gz",
            }
        )
    (refs / "cases.json").write_text(json.dumps(entries))
    return data, refs


def test_real_sr_pairs_are_acquisitions_of_their_targets(tmp_path):
    """Pairs from real scans: the coarse input is a degradation of the fine target (for a
    block profile without noise, exactly its block mean, clipped to the value range), every
    draw differs, and the same seed redraws the same batch."""
    from medzoo.train.sr_sources import DegradationConfig, RealSRSource

    data, refs = _sr_references(tmp_path)
    spec = get_spec("srnet3d_ixi")
    exact = DegradationConfig(
        block_probability=1.0, noise_probability=0.0, gamma_range=(1, 1), bias_amplitude=0
    )
    source = RealSRSource(spec, data, reference_dir=refs, patch=(4, 4, 4), degradation=exact)
    coarse, fine = source.batches(3, 10).batch(0, 0)
    assert coarse.shape == (3, 4, 4, 4, 1) and fine.shape == (3, 16, 16, 16, 1)
    blocks = fine.reshape(3, 4, 4, 4, 4, 4, 4, 1).mean(axis=(2, 4, 6))
    assert np.allclose(coarse, np.clip(blocks, 0, 1), atol=1e-5)
    assert fine.max() > 0.3  # crops centred on the head, not on air
    assert not np.allclose(fine[0], fine[1])
    again, _ = source.batches(3, 10).batch(0, 0)
    assert np.array_equal(coarse, again)
    other, _ = source.batches(3, 10).batch(1, 0)
    assert not np.array_equal(coarse, other)

    noisy = RealSRSource(spec, data, reference_dir=refs, patch=(4, 4, 4))
    coarse, fine = noisy.batches(8, 10).batch(0, 0)
    blocks = fine.reshape(8, 4, 4, 4, 4, 4, 4, 1).mean(axis=(2, 4, 6))
    assert not np.allclose(coarse, np.clip(blocks, 0, 1), atol=1e-3)  # degradations vary


def test_real_sr_source_refuses_a_held_out_scan_in_training(tmp_path):
    from medzoo.train.sr_sources import RealSRSource

    data, refs = _sr_references(tmp_path)
    (data / "colin_copy.nii.gz").write_bytes((refs / "test_t1.nii.gz").read_bytes())
    with pytest.raises(ValueError, match="held-out reference 'colin_test'"):
        RealSRSource(get_spec("srnet3d_ixi"), data, reference_dir=refs)


def test_sr_trains_on_real_scans_and_scores_against_bspline(tmp_path):
    data, refs = _sr_references(tmp_path)
    out = tmp_path / "run"
    args = ["--data", "real", "--data-dir", str(data), "--reference-dir", str(refs)]
    args += ["--steps", "2", "--val-every", "2", "--patch", "4", "--batch-size", "2"]
    args += ["--val-cases", "1", "--test-cases", "1", "--out", str(out), "-q"]
    assert run_script("srnet3d_ixi", *args) == 0
    metadata = json.loads((out / "presets/srnet3d_ixi/1.0.0/metadata.json").read_text())
    provenance = metadata["training_data"]
    assert list(provenance["real_scans_sha256"]) == ["train_head.nii.gz"]
    assert len(provenance["real_scans_sha256"]["train_head.nii.gz"]) == 64
    metrics = metadata["metrics"]
    for key in ("psnr", "psnr_bspline", "psnr_trilinear", "brain_ssim", "brain_ssim_bspline"):
        assert key in metrics and f"colin_test/{key}" in metrics
    assert "REAL" in metrics["psnr"]["data"]
    # B-spline beats trilinear on a real scan: the baselines are what they say they are.
    assert metrics["psnr_bspline"]["value"] > metrics["psnr_trilinear"]["value"]
    with (out / "log.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["val_psnr"]]
    assert [r["step"] for r in rows] == ["2"] and float(rows[0]["val_psnr_bspline"]) > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "real", "--reference-dir", "x"], "needs --data-dir"),
        (["--data", "mixed"], "--reference-dir"),
    ],
)
def test_real_sr_arguments_are_named(args, message, tmp_path, capsys):
    assert run_script("srnet3d_ixi", *args, "--out", str(tmp_path / "run")) == 2
    assert message in capsys.readouterr().err


def test_real_data_is_refused_for_models_that_are_not_super_resolution(tmp_path, capsys):
    args = ["--data", "real", "--data-dir", str(tmp_path), "--reference-dir", str(tmp_path)]
    assert run_script("resnet3d_ixi_age", *args, "--out", str(tmp_path / "run")) == 2
    assert "super-resolution" in capsys.readouterr().err


def test_weight_average_is_validated_kept_published_and_resumed(tmp_path, capsys):
    """With --weight-average the best checkpoint and the preset are the average (the snapshot
    of the trained weights differs), and a resumed run continues the average from its file."""
    import keras

    name = "resnet3d_ixi_age"
    out = tmp_path / "run"
    args = tiny_args(name, out, steps=4, val_every="2", weight_average="0.5")
    assert run_script(name, *args, "--snapshots") == 0
    checkpoint = out / "checkpoint"
    state = json.loads((checkpoint / "state.json").read_text())
    assert state["weight_average"] == 0.5

    def weights(path: Path) -> list[np.ndarray]:
        model = build(name)
        model.load_weights(path)
        return model.get_weights()

    def same(first: list[np.ndarray], second: list[np.ndarray]) -> bool:
        return all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))

    best = state["best_step"]
    kept = weights(checkpoint / "best.weights.h5")
    averaged = weights(checkpoint / f"step_{best:06d}.average.weights.h5")
    trained = weights(checkpoint / f"step_{best:06d}.weights.h5")
    assert same(kept, averaged)
    assert not same(kept, trained)
    preset = weights(out / "presets" / name / "1.0.0" / "model.weights.h5")
    assert same(kept, preset)
    at4 = weights(checkpoint / "average.weights.h5")
    assert same(at4, weights(checkpoint / "step_000004.average.weights.h5"))

    # resumed, the average goes on from its file: step 5's is halfway from step 4's to the weights
    args = tiny_args(name, out, steps=5, version="1.0.1", weight_average="0.5")
    assert run_script(name, *args, "--resume") == 0
    at5 = weights(checkpoint / "average.weights.h5")
    trained5 = keras.saving.load_model(checkpoint / "last.keras", safe_mode=True).get_weights()
    for a5, a4, w5 in zip(at5, at4, trained5, strict=True):
        np.testing.assert_allclose(a5, 0.5 * a4 + 0.5 * w5, rtol=1e-6, atol=1e-7)
    capsys.readouterr()
    assert run_script(name, *tiny_args(name, tmp_path / "x", weight_average="1")) == 2
    assert "weight_average must lie in (0, 1)" in capsys.readouterr().err
