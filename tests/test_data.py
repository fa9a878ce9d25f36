"""Streaming pipeline: batches, workers, cache budget, seeding, CSV/folder input, tf.data, JAX.

Subjects are cut from the real IBSR label crop (tests/data/ibsr_crop_label.nii.gz, FreeSurfer
ids) with two image channels made from it by fixed intensity tables, so every image voxel tells
which label it belongs to.
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

from medzoo import augmentation as aug
from medzoo import data
from medzoo.io import array_to_image, read_label, write_image
from medzoo.preprocessing import crop_or_pad

REPO = Path(__file__).resolve().parents[1]
LABELS = REPO / "tests" / "data" / "ibsr_crop_label.nii.gz"
T1 = np.arange(64) * 3.0  # intensity of label id i in channel 0 (0 for background)
T2 = np.arange(64) ** 1.5  # ... in channel 1
# (size (x, y, z), index (x, y, z)) of each subject's region in the 32^3 label crop
REGIONS = [((16, 16, 16), (0, 0, 0)), ((20, 18, 16), (8, 6, 4)), ((24, 24, 24), (4, 8, 2))]
REGIONS += [((16, 20, 24), (10, 2, 6))]
AGES = [31.0, 57.0, 24.0, 49.0]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Four subject folders sub-0..sub-3 (t1, t2, seg .nii.gz, 16-24 voxels a side) + a CSV."""
    root = tmp_path_factory.mktemp("cohort")
    source = sitk.ReadImage(str(LABELS))
    rows = []
    for i, (size, index) in enumerate(REGIONS):
        region = sitk.RegionOfInterest(source, size, index)
        label = sitk.GetArrayFromImage(region)
        sub = root / f"sub-{i}"
        sub.mkdir()
        for name, table in [("t1", T1), ("t2", T2)]:
            image = sitk.GetImageFromArray(table[label].astype(np.float32))
            image.CopyInformation(region)
            write_image(image, sub / f"{name}.nii.gz")
        write_image(region, sub / "seg.nii.gz")
        rows.append([f"sub-{i}/t1.nii.gz", f"sub-{i}/t2.nii.gz", f"sub-{i}/seg.nii.gz"])
        rows[-1] += [AGES[i], i % 2, f"sub-{i}"]
    with (root / "cohort.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["t1", "t2", "seg", "age", "sex", "id"])
        writer.writerows(rows)
    return root


@pytest.fixture(scope="module")
def subjects(folder) -> list[data.Subject]:
    return data.subjects_from_csv(
        folder / "cohort.csv", ["t1", "t2"], "seg", targets=["age", "sex"], name="id"
    )


def _assert_images_match_labels(x: np.ndarray, y: np.ndarray) -> None:
    np.testing.assert_allclose(x[..., 0], T1[y], rtol=1e-6)
    np.testing.assert_allclose(x[..., 1], T2[y], rtol=1e-6)


def test_csv_gives_subjects_with_resolved_paths_and_targets(folder, subjects):
    assert [s.name for s in subjects] == ["sub-0", "sub-1", "sub-2", "sub-3"]
    assert subjects[1].channels == (
        str(folder / "sub-1/t1.nii.gz"),
        str(folder / "sub-1/t2.nii.gz"),
    )
    assert subjects[1].label == str(folder / "sub-1/seg.nii.gz")
    assert subjects[1].targets == {"age": 57.0, "sex": 1.0}
    loaded = data.read_subject(subjects[2])
    assert loaded.image.shape == (24, 24, 24, 2) and loaded.image.dtype == np.float32
    assert loaded.label.shape == (24, 24, 24) and loaded.label.dtype == np.int32
    assert loaded.geometry.spacing == (1.0, 1.0, 1.0)


def test_csv_naming_a_missing_file_names_the_file_and_the_line(folder, tmp_path):
    table = (folder / "cohort.csv").read_text().splitlines()
    table[2] = table[2].replace("sub-1/t2.nii.gz", "sub-1/missing_t2.nii.gz")
    broken = folder / "broken.csv"
    broken.write_text("\n".join(table) + "\n")
    with pytest.raises(FileNotFoundError, match=r"missing_t2\.nii\.gz.*column 't2'.*line 3"):
        data.subjects_from_csv(broken, ["t1", "t2"], "seg")
    with pytest.raises(ValueError, match="no column"):
        data.subjects_from_csv(folder / "cohort.csv", ["t1", "flair"], "seg")
    table[1] = table[1].replace(",0,sub-0", ",F,sub-0")
    typo = folder / "typo.csv"
    typo.write_text("\n".join(table) + "\n")
    with pytest.raises(ValueError, match=r"line 2: target 'sex' is 'F'"):
        data.subjects_from_csv(typo, ["t1"], targets=["sex"])


def test_folder_input(folder):
    found = data.subjects_from_folder(folder, ["t1.nii*", "t2.nii*"], "seg.nii*")
    assert [s.name for s in found] == ["sub-0", "sub-1", "sub-2", "sub-3"]
    assert found[3].channels == (str(folder / "sub-3/t1.nii.gz"), str(folder / "sub-3/t2.nii.gz"))
    assert found[3].label == str(folder / "sub-3/seg.nii.gz")
    with pytest.raises(FileNotFoundError, match=r"sub-0: no file matches 'flair\*'"):
        data.subjects_from_folder(folder, ["flair*"])
    with pytest.raises(ValueError, match="3 files match"):
        data.subjects_from_folder(folder, ["*.nii.gz"])


def test_patch_batches_with_two_workers(subjects):
    # An 18^3 patch also exercises zero-padding of the 16-voxel subjects.
    dataset = data.PatchDataset(
        subjects,
        (18, 18, 18),
        batch_size=3,
        patches_per_subject=2,
        augmentation=aug.Flip(axes=(0, 1, 2)),
        batches_per_epoch=4,
        seed=0,
        workers=2,
    )
    batches = list(data.iterate(dataset, epochs=2))
    assert len(batches) == 8 and dataset.epoch == 2
    for x, y in batches:
        assert x.shape == (3, 18, 18, 18, 2) and x.dtype == np.float32
        assert y.shape == (3, 18, 18, 18) and y.dtype == np.int32
        _assert_images_match_labels(x, y)
    assert len({int(v) for _, y in batches for v in np.unique(y)}) > 10


def test_keras_fit_consumes_the_dataset_with_workers(subjects):
    import keras

    dataset = data.PatchDataset(
        subjects, (8, 8, 8), batch_size=2, batches_per_epoch=3, seed=1, workers=2
    )
    model = keras.Sequential([keras.Input((8, 8, 8, 2)), keras.layers.Conv3D(64, 1)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(dataset, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    assert dataset.epoch >= 2  # Keras calls on_epoch_end after each epoch (and once on reset)


def test_each_subject_is_read_once_and_the_cache_budget_is_honoured(subjects):
    reads = []

    def counting(subject):
        reads.append(subject.name)
        return data.read_subject(subject)

    def run(budget):
        reads.clear()
        dataset = data.PatchDataset(
            subjects, (12, 12, 12), 2, read_fn=counting, cache_bytes=budget, seed=3, workers=2
        )
        list(data.iterate(dataset, epochs=3))
        return dataset.cache_info()

    ample = run(2**30)
    assert sorted(reads) == ["sub-0", "sub-1", "sub-2", "sub-3"]  # read once each
    assert ample.items == 4 and ample.evictions == 0
    # Room for about two subjects (12 bytes per voxel: 2 float32 channels + an int32 label).
    budget = 2 * 12 * 24**3
    tight = run(budget)
    assert tight.bytes <= budget and tight.items < 4
    assert tight.evictions > 0 and len(reads) == tight.misses > 4  # evicted ones are re-read


def test_same_seed_same_batches_whatever_the_workers_and_cache(subjects):
    chain = aug.Augmenter(
        flip_axes=(2,), rotation=10.0, elastic=1.5, elastic_grid=2, contrast=(0.9, 1.1), noise=0.1
    )

    def batches(seed, workers, budget):
        dataset = data.PatchDataset(
            subjects,
            (10, 10, 10),
            2,
            augmentation=chain,
            batches_per_epoch=3,
            seed=seed,
            workers=workers,
            cache_bytes=budget,
        )
        return list(data.iterate(dataset, epochs=2))

    first = batches(5, workers=2, budget=2**30)
    again = batches(5, workers=1, budget=0)
    other = batches(6, workers=2, budget=2**30)
    for (x1, y1), (x2, y2) in zip(first, again, strict=True):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(first[0][0], other[0][0])
    assert not np.array_equal(first[0][0], first[3][0])  # epoch 2 differs from epoch 1


def test_balanced_sampling_gives_a_rare_class_its_share(subjects):
    counts = {}
    for subject in subjects:
        ids, n = np.unique(read_label(subject.label)[0], return_counts=True)
        for i, c in zip(ids, n, strict=True):
            counts.setdefault(int(i), []).append(int(c))
    rare = min((c for c in counts if len(counts[c]) == len(subjects)), key=lambda c: sum(counts[c]))
    dataset = data.PatchDataset(
        subjects, (6, 6, 6), 8, sampler="balanced", classes=[0, rare], batches_per_epoch=10, seed=2
    )
    with_rare = [bool((patch == rare).any()) for _, y in data.iterate(dataset) for patch in y]
    assert np.mean(with_rare) >= 0.5
    # Only the rare class, with patches taller than two of the subjects (padded along z): the
    # class positions are shifted with the padding, so every patch still holds the class.
    padded = data.PatchDataset(
        subjects, (17, 6, 6), 8, sampler="balanced", classes=[rare], batches_per_epoch=4, seed=3
    )
    assert all((patch == rare).any() for _, y in data.iterate(padded) for patch in y)


def test_volume_dataset_gives_whole_volumes_and_targets(subjects):
    dataset = data.VolumeDataset(subjects, ["age", "sex"], (20, 20, 20), 3, seed=4, workers=2)
    assert len(dataset) == 2
    seen = []
    for x, y in data.iterate(dataset):
        assert x.shape == (3, 20, 20, 20, 2) and x.dtype == np.float32
        assert y.shape == (3, 2) and y.dtype == np.float32
        for k in range(3):
            index = AGES.index(float(y[k, 0]))
            assert y[k, 1] == index % 2
            expected, _ = crop_or_pad(data.read_subject(subjects[index]).image, (20, 20, 20))
            np.testing.assert_array_equal(x[k], expected)
            seen.append(index)
    assert sorted(set(seen)) == [0, 1, 2, 3] and len(seen) == 6  # the last batch wraps around
    with pytest.raises(ValueError, match=r"sub-0.*no target"):
        data.VolumeDataset(subjects, ["weight"], (20, 20, 20))


def test_tf_dataset_matches_the_batches(subjects):
    import tensorflow as tf

    dataset = data.PatchDataset(
        subjects, (8, 8, 8), 2, augmentation=aug.Contrast(), batches_per_epoch=3, seed=7, workers=2
    )
    stream = data.to_tf_dataset(dataset, epochs=2)
    assert stream.element_spec[0].shape == (2, 8, 8, 8, 2)
    assert stream.element_spec[1].dtype == tf.int32
    produced = list(stream.as_numpy_iterator())
    assert len(produced) == 6 and dataset.epoch == 0
    for step, (x, y) in enumerate(produced):
        expected_x, expected_y = dataset.batch(step % 3, step // 3)
        np.testing.assert_array_equal(x, expected_x)
        np.testing.assert_array_equal(y, expected_y)


def test_unlabelled_subjects_and_custom_read_function(subjects):
    geometry = data.read_subject(subjects[0]).geometry

    def synthetic(subject):
        rng = np.random.default_rng(int(subject.name))
        return data.SubjectData(rng.random((16, 16, 16, 1), dtype=np.float32), None, geometry)

    dataset = data.PatchDataset(
        [data.Subject((), name=str(i)) for i in range(3)], (8, 8, 8), 4, read_fn=synthetic, seed=0
    )
    batch = dataset[0]
    assert len(batch) == 1 and batch[0].shape == (4, 8, 8, 8, 1)
    assert not dataset.labelled and dataset.channels == 1


def test_bad_subjects_raise_clear_errors(folder, subjects, tmp_path):
    missing = data.Subject((str(tmp_path / "absent.nii.gz"),), name="ghost")
    with pytest.raises(FileNotFoundError, match=r"absent\.nii\.gz.*'ghost'"):
        data.PatchDataset([missing], (8, 8, 8))
    unlabelled = data.Subject(subjects[1].channels, name="no-label")
    mixed = data.PatchDataset([subjects[0], unlabelled], (8, 8, 8), 2, seed=0)
    with pytest.raises(ValueError, match=r"no-label.*either all or none a label"):
        mixed[0]
    shifted = read_label(subjects[0].label)
    moved = array_to_image(shifted[0], shifted[1])
    moved.SetOrigin((5.0, 0.0, 0.0))
    write_image(moved, tmp_path / "moved_seg.nii.gz")
    bad = data.Subject(subjects[0].channels, str(tmp_path / "moved_seg.nii.gz"), name="moved")
    with pytest.raises(ValueError, match=r"moved.*moved_seg\.nii\.gz.*not on the grid"):
        data.read_subject(bad)
    with pytest.raises(ValueError, match="single path"):
        data.Subject(subjects[0].channels[0])
    with pytest.raises(ValueError, match="patch_shape"):
        data.PatchDataset(subjects, (8, 8))


def test_pipeline_runs_under_jax_without_tensorflow():
    script = """
import sys
import numpy as np
from medzoo import data
from medzoo.io import Geometry
geometry = Geometry((0, 0, 0), (1, 1, 1), (1, 0, 0, 0, 1, 0, 0, 0, 1), (16, 16, 16))
def read(subject):
    label = np.zeros((16, 16, 16), np.int32)
    label[4:12, 4:12, 4:12] = 1
    return data.SubjectData(label[..., None].astype(np.float32), label, geometry)
dataset = data.PatchDataset([data.Subject((), name="a")], (8, 8, 8), 2, read_fn=read, workers=2)
x, y = next(data.iterate(dataset))
import keras
assert keras.backend.backend() == "jax", keras.backend.backend()
assert "tensorflow" not in sys.modules
assert x.shape == (2, 8, 8, 8, 1) and y.shape == (2, 8, 8, 8)
"""
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_benchmark_script_runs_end_to_end_at_a_tiny_size(tmp_path):
    out = tmp_path / "results.json"
    command = [sys.executable, str(REPO / "benchmarks" / "io_pipeline.py")]
    command += ["--volumes", "2", "--batches", "2", "--shape", "24", "24", "24", "--crop", "16"]
    command += ["--json", str(out)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    for row in ["(a) in memory", "(b) generator", "(c) TFRecords", "(d) medzoo"]:
        assert row in result.stdout
    seconds = json.loads(out.read_text())["seconds"]
    assert set(seconds) >= {"a_in_memory", "b_generator", "c_tfrecords", "d_medzoo_cold"}
    assert all(v > 0 for v in seconds.values())
