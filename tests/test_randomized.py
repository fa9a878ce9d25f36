"""Domain-randomised rendering from whole-head label maps (medzoo.synth.randomized), on the
bundled real IBSR head label map."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

from medzoo.assets import asset
from medzoo.synth.randomized import (
    LABEL_MAP_TO_MRBRAINS13,
    LabelMapBank,
    RandomizedConfig,
    RandomizedRenderer,
    _decimate,
    _smooth_field,
)

IBSR_HEAD = asset("atlas/ibsr_head.nii.gz")


@pytest.fixture(scope="module")
def bank() -> LabelMapBank:
    return LabelMapBank.from_files([IBSR_HEAD])


def test_the_bank_crops_to_the_head_and_maps_every_id_to_a_class(bank):
    (head,) = bank.maps
    image = sitk.ReadImage(str(IBSR_HEAD))
    assert all(n <= s for n, s in zip(head.index.shape, image.GetSize()[::-1], strict=True))
    original = np.unique(sitk.GetArrayViewFromImage(image))
    assert sorted(bank.ids.tolist()) == sorted(original.tolist())
    # every brain id keeps its MRBrainS13 class; head tissues (200-202) are background
    for label_id, cls in zip(bank.ids, bank.classes, strict=True):
        assert cls == LABEL_MAP_TO_MRBRAINS13(int(label_id))
    assert set(bank.classes[np.isin(bank.ids, [200, 201, 202])]) == {0}
    assert LABEL_MAP_TO_MRBRAINS13(25) == 4 and LABEL_MAP_TO_MRBRAINS13(515) == 0
    assert len(head.brain_voxels) > 1000 and len(head.head_voxels) > len(head.brain_voxels) / 2


def test_samples_are_normalised_reproducible_and_new_for_every_seed(bank):
    renderer = RandomizedRenderer(bank, RandomizedConfig(patch_shape=(24, 24, 24)))
    image, labels = renderer.sample(seed=1)
    assert image.shape == (24, 24, 24, 3) and image.dtype == np.float32
    assert labels.shape == (24, 24, 24) and labels.dtype == np.int32
    assert image[..., 0].min() >= 0.0 and image[..., 0].max() <= 1.0
    assert set(np.unique(labels)) <= set(range(9))
    again, again_labels = renderer.sample(seed=1)
    np.testing.assert_array_equal(image, again)
    np.testing.assert_array_equal(labels, again_labels)
    other, _ = renderer.sample(seed=2)
    assert not np.array_equal(image, other)


def test_absent_optional_channels_carry_the_absent_value(bank):
    never = RandomizedConfig(patch_shape=(16, 16, 16), optional_channel_probability=0.0)
    image, _ = RandomizedRenderer(bank, never).sample(seed=3)
    assert np.all(image[..., 1:] == -1.0) and image[..., 0].max() > 0
    always = RandomizedConfig(patch_shape=(16, 16, 16), optional_channel_probability=1.0)
    image, _ = RandomizedRenderer(bank, always).sample(seed=3)
    assert image[..., 1:].min() >= 0.0


def test_patches_centred_on_the_brain_hold_brain_tissue(bank):
    config = RandomizedConfig(patch_shape=(32, 32, 32), brain_centre_probability=1.0)
    renderer = RandomizedRenderer(bank, config)
    brain_share = [np.mean(renderer.sample(seed=s)[1] > 0) for s in range(4)]
    assert min(brain_share) > 0.2


def test_patches_beside_the_head_keep_the_air_dark_as_a_whole_scan_would():
    """A patch centred in the air beside the head is normalised by the whole head's intensities
    (as inference normalises the whole scan), so pure air stays near 0 instead of being
    stretched to [0, 1]; the head in it keeps its contrast (T1 white matter bright)."""
    array = np.zeros((40, 40, 40), np.int32)
    array[10:30, 10:30, 10:30] = 2  # a cube of white matter
    config = RandomizedConfig(
        patch_shape=(24, 24, 24),
        brain_centre_probability=0.0,
        air_centre_probability=1.0,
        black_background_probability=0.0,
        random_contrast_probability=0.0,
        noise_std=(0.0, 0.0),
        bias_std=(0.0, 0.0),
        thick_slice_probability=0.0,
        gamma_std=0.0,
    )
    renderer = RandomizedRenderer(LabelMapBank(["cube"], [array]), config)
    samples = [renderer.sample(seed=s) for s in range(12)]
    white_share = [np.mean(labels == 3) for _, labels in samples]
    assert min(white_share) < 0.001 and max(white_share) < 0.2  # beside the head, some pure air
    for image, labels in samples:
        assert np.median(image[..., 0][labels == 0]) < 0.15
        if (labels == 3).any():
            assert image[..., 0][labels == 3].mean() > 0.7


def test_head_tissue_is_split_into_regions_of_its_own_while_brain_tissue_is_not():
    """Textured samples give one head tissue several intensities (as muscle, fat and fascia of a
    real neck), some of them brain-like, and keep it labelled background; brain tissue keeps its
    single intensity. Without texture the head tissue is one Gaussian."""
    array = np.zeros((48, 48, 48), np.int32)
    array[4:44, 4:44, 4:24] = 507  # one head tissue (SynthSeg's soft tissue id)
    array[4:44, 4:44, 24:44] = 2  # white matter beside it
    quiet = dict(
        patch_shape=(32, 32, 32),
        brain_centre_probability=0.0,
        rotation_deg=0.0,
        scaling=(1.0, 1.0),
        shear=0.0,
        elastic_mm=(0.0, 0.0),
        flip_probability=0.0,
        random_contrast_probability=1.0,  # random Gaussians of zero width: one value each
        random_std=(0.0, 0.0),
        noise_std=(0.0, 0.0),
        bias_std=(0.0, 0.0),
        thick_slice_probability=0.0,
        voxel_mm=(1.0, 1.0),
        gamma_std=0.0,
        optional_channel_probability=0.0,
        black_background_probability=1.0,
        head_texture_regions=(4, 4),
        head_texture_mm=(6.0, 6.0),
    )
    bank = LabelMapBank(["halves"], [array])
    for textured in (0.0, 1.0):
        config = RandomizedConfig(head_texture_probability=textured, **quiet)
        renderer = RandomizedRenderer(bank, config)
        counts, brain_counts = [], []
        for seed in range(6):
            image, labels = renderer.sample(seed=seed)
            tissue = image[..., 0][(labels == 0) & (image[..., 0] > 0)]  # the air is black
            brain = image[..., 0][labels == 3]
            interior = brain[(brain > 0.02) & (brain < 0.98)]
            counts.append(len(np.unique(np.round(tissue, 4))))
            brain_counts.append(len(np.unique(np.round(interior, 4))))
        assert max(brain_counts) <= 1  # brain tissue: one intensity (or clipped to 0 / 1)
        if textured:
            assert min(counts) >= 3  # region 0 plus at least two regions of their own
        else:
            assert max(counts) <= 2  # one Gaussian (and the edge of the clip)


def test_a_saved_bank_loads_back_without_simpleitk(bank, tmp_path):
    bank.save(tmp_path / "bank.npz")
    loaded = LabelMapBank.load(tmp_path / "bank.npz")
    np.testing.assert_array_equal(loaded.ids, bank.ids)
    np.testing.assert_array_equal(loaded.maps[0].index, bank.maps[0].index)
    config = RandomizedConfig(patch_shape=(16, 16, 16))
    a = RandomizedRenderer(bank, config).sample(seed=5)
    b = RandomizedRenderer(loaded, config).sample(seed=5)
    np.testing.assert_array_equal(a[0], b[0])
    code = (
        "import sys; sys.modules['SimpleITK'] = None; "
        "from medzoo.synth.randomized import LabelMapBank, RandomizedRenderer; "
        f"RandomizedRenderer(LabelMapBank.load({str(tmp_path / 'bank.npz')!r})).sample(seed=1)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_smooth_fields_and_thick_slices():
    rng = np.random.default_rng(0)
    field = _smooth_field(rng, (20, 30, 40), 10.0, 2.0, 3)
    assert field.shape == (3, 20, 30, 40)
    assert np.abs(np.diff(field, axis=3)).max() < 2.0  # smooth: small voxel-to-voxel steps
    ramp = np.broadcast_to(np.arange(40, dtype=np.float32), (4, 4, 40)).copy()
    # linear data survive sampling every 5 voxels and interpolation back (inside the range)
    back = _decimate(ramp, 2, 5.0, 0.0, np.random.default_rng(1))
    np.testing.assert_allclose(back[..., 5:35], ramp[..., 5:35], atol=1e-4)
    steps = np.zeros((4, 4, 40), np.float32)
    steps[..., ::2] = 1.0  # detail finer than the thick slices is lost
    assert np.ptp(_decimate(steps, 2, 4.0, 0.0, np.random.default_rng(1))[..., 8:32]) < 1.0


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no label map files"):
        LabelMapBank.from_files([])
    coarse = sitk.Image(8, 8, 8, sitk.sitkUInt8)
    coarse.SetSpacing((2.0, 2.0, 2.0))
    coarse[4, 4, 4] = 2
    path = tmp_path / "coarse.nii.gz"
    sitk.WriteImage(coarse, str(path))
    with pytest.raises(ValueError, match="1 mm label maps"):
        LabelMapBank.from_files([path])
    with pytest.raises(ValueError, match="one realistic contrast per channel"):
        RandomizedConfig(channels=("T1", "T2"), contrasts=("T1",))
    with pytest.raises(ValueError, match="at least 8 voxels"):
        RandomizedConfig(patch_shape=(4, 96, 96))
