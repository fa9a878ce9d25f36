"""Synthetic cohorts: subjects with an age and a sex whose anatomy follows population trends.

The engine turns a :class:`Person` into a label map by morphology on the atlas (see
:mod:`medzoo.synth.anatomy`): the lateral ventricles grow into the surrounding white matter,
the cortex is eroded from its CSF side into CSF, white-matter lesions are placed, and the whole
head is scaled for intracranial volume (ICV). A model trained on a cohort must therefore learn
real shape cues (ventricle size, sulcal width, lesion load, head size).

The atlas is taken to show a young adult (:data:`REFERENCE_AGE`, 20 years; the MNI152 2009
template it comes from was built from young adults), of average size for both sexes. Effect
sizes, with the sources they follow. All are approximate population trends, chosen within the
ranges these papers report, not fits to their data:

- Ventricles (:func:`ventricle_factor`): lateral-ventricle volume grows by 0.5 %/year up to 40,
  then the yearly rate rises linearly to 2 %/year at 60 and 3.5 %/year at 80 (x1.4 at 60,
  x1.8 at 70, x3.0 at 85 relative to age 20). Ventricular expansion accelerates with age
  (Scahill et al. 2003, Archives of Neurology 60:989-994) and reaches a few percent per year in
  healthy people over 60 (Fjell et al. 2009, Journal of Neuroscience 29:15223-15231).
- Cortical grey matter (:func:`cortex_factor`): -0.35 % of the young-adult volume per year,
  linear from 20 (-14 % at 60, -23 % at 85). Grey matter declines roughly linearly across adult
  life (Good et al. 2001, NeuroImage 14:21-36; Ge et al. 2002, AJNR 23:1327-1333). Deep grey
  matter and the cerebellum are left unchanged (a simplification).
- White-matter lesions (:func:`lesion_volume_ml`): median volume 0.5 ml at 40, doubling every
  10 years (2 ml at 60, 8 ml at 80), log-normal between subjects; lesions favour the
  periventricular white matter. Prevalence and severity of white-matter lesions rise steeply
  with age, periventricular and subcortical (de Leeuw et al. 2001, Journal of Neurology,
  Neurosurgery & Psychiatry 70:9-14); the absolute volumes are our choice.
- Intracranial volume (:func:`icv_factor`): 12 % larger in men than in women (Ruigrok et al.
  2014, Neuroscience & Biobehavioral Reviews 39:34-50, meta-analysis: ICV and total brain volume
  about 8-13 % larger in males); no change with age in adults.

Between-subject variability (log-normal standard deviations, our approximations): ICV 0.08,
ventricles 0.35, lesion volume 0.8 (capped at 60 ml); cortex factor +-0.03 (normal).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "REFERENCE_AGE",
    "Person",
    "Subject",
    "cortex_factor",
    "icv_factor",
    "lesion_volume_ml",
    "make_cohort",
    "random_subject",
    "ventricle_factor",
]

REFERENCE_AGE = 20.0
MIN_AGE, MAX_AGE = 18.0, 100.0
_SEXES = ("F", "M")
_MALE_TO_FEMALE_ICV = 1.12
_SD_LOG_ICV = 0.08
_SD_LOG_VENTRICLES = 0.35
_SD_CORTEX = 0.03
_SD_LOG_LESIONS = 0.8
_MAX_LESIONS_ML = 60.0


def _check_age(age: float, caller: str) -> float:
    age = float(age)
    if not (math.isfinite(age) and MIN_AGE <= age <= MAX_AGE):
        raise ValueError(
            f"{caller}: age {age!r} years is outside the adult range the anatomy model covers "
            f"[{MIN_AGE:g}, {MAX_AGE:g}]"
        )
    return age


def ventricle_factor(age: float) -> float:
    """Population-mean lateral-ventricle volume at ``age`` (years), relative to age 20."""
    years = max(_check_age(age, "ventricle_factor") - REFERENCE_AGE, 0.0)
    early = min(years, 20.0)  # 0.5 %/year from 20 to 40
    late = max(years - 20.0, 0.0)  # then 0.5 %/year + 0.075 %/year per year after 40
    return math.exp(0.005 * early + 0.005 * late + 0.00075 * late**2 / 2.0)


def cortex_factor(age: float) -> float:
    """Population-mean cortical grey-matter volume at ``age`` (years), relative to age 20."""
    return 1.0 - 0.0035 * max(_check_age(age, "cortex_factor") - REFERENCE_AGE, 0.0)


def lesion_volume_ml(age: float) -> float:
    """Population-median white-matter lesion volume (ml) at ``age`` (years)."""
    return 0.5 * 2.0 ** ((_check_age(age, "lesion_volume_ml") - 40.0) / 10.0)


def icv_factor(sex: str) -> float:
    """Population-mean intracranial volume of ``sex`` ("F" or "M") relative to the atlas."""
    if sex not in _SEXES:
        raise ValueError(f"icv_factor: sex must be 'F' or 'M', got {sex!r}")
    half = math.sqrt(_MALE_TO_FEMALE_ICV)
    return half if sex == "M" else 1.0 / half


@dataclass(frozen=True)
class Person:
    """One synthetic person: what the engine needs to build their anatomy.

    Attributes:
        subject_id: a name, e.g. "sub-007".
        age: years.
        sex: "F" or "M".
        icv_factor: intracranial volume relative to the atlas (volume ratio; the head is scaled
            by its cube root along each axis).
        ventricle_factor: lateral-ventricle volume relative to the atlas (>= 1).
        cortex_factor: cortical grey-matter volume relative to the atlas (<= 1).
        lesion_volume_ml: white-matter lesion volume in ml (at atlas size).
        seed: seed of the subject's own random anatomy (where the lesions are).
    """

    subject_id: str
    age: float
    sex: str
    icv_factor: float
    ventricle_factor: float
    cortex_factor: float
    lesion_volume_ml: float
    seed: int

    def __post_init__(self) -> None:
        _check_age(self.age, f"Subject {self.subject_id!r}")
        if self.sex not in _SEXES:
            raise ValueError(
                f"Subject {self.subject_id!r}: sex must be 'F' or 'M', got {self.sex!r}"
            )
        checks = (
            ("icv_factor", self.icv_factor, 0.5, 2.0),
            ("ventricle_factor", self.ventricle_factor, 1.0, 10.0),
            ("cortex_factor", self.cortex_factor, 0.5, 1.0),
            ("lesion_volume_ml", self.lesion_volume_ml, 0.0, 200.0),
        )
        for name, value, low, high in checks:
            if not (math.isfinite(value) and low <= value <= high):
                raise ValueError(
                    f"Subject {self.subject_id!r}: {name} {value!r} is outside [{low}, {high}]"
                )

    @classmethod
    def typical(cls, age: float, sex: str, subject_id: str = "typical", seed: int = 0) -> Person:
        """The population-mean subject of this age and sex (no between-subject variability)."""
        return cls(
            subject_id=subject_id,
            age=float(age),
            sex=sex,
            icv_factor=icv_factor(sex),
            ventricle_factor=ventricle_factor(age),
            cortex_factor=cortex_factor(age),
            lesion_volume_ml=lesion_volume_ml(age),
            seed=int(seed),
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-able dict of the fields."""
        return asdict(self)


#: The old name of :class:`Person` (``medzoo.data.Subject`` is a data record, not a person).
Subject = Person


def _individual(rng: np.random.Generator, age: float, sex: str, subject_id: str) -> Person:
    z = rng.standard_normal(4)
    return Person(
        subject_id=subject_id,
        age=age,
        sex=sex,
        icv_factor=float(np.clip(icv_factor(sex) * math.exp(_SD_LOG_ICV * z[0]), 0.6, 1.6)),
        ventricle_factor=float(
            np.clip(ventricle_factor(age) * math.exp(_SD_LOG_VENTRICLES * z[1]), 1.0, 8.0)
        ),
        cortex_factor=float(np.clip(cortex_factor(age) + _SD_CORTEX * z[2], 0.55, 1.0)),
        lesion_volume_ml=float(
            np.clip(lesion_volume_ml(age) * math.exp(_SD_LOG_LESIONS * z[3]), 0.0, _MAX_LESIONS_ML)
        ),
        seed=int(rng.integers(2**31)),
    )


def random_subject(
    rng: np.random.Generator,
    age_range: tuple[float, float] = (20.0, 86.0),
    male_probability: float = 0.5,
    subject_id: str = "random",
) -> Person:
    """One subject with uniform age in ``age_range`` (years), male with ``male_probability``."""
    age = float(rng.uniform(*age_range))
    sex = "M" if rng.random() < male_probability else "F"
    return _individual(rng, age, sex, subject_id)


def make_cohort(
    n: int, age_range: tuple[float, float] = (20, 86), sex_ratio: float = 0.5, seed: int = 0
) -> list[Person]:
    """A reproducible cohort of ``n`` subjects.

    Args:
        n: number of subjects (>= 1).
        age_range: (youngest, oldest) age in years, within [18, 100]; ages are uniform.
        sex_ratio: fraction of men, in [0, 1]; exactly ``round(n * sex_ratio)`` are male.
        seed: the same seed gives the same cohort.

    Returns:
        Subjects "sub-000", "sub-001", ... with individual variation around the population
        trends of this module.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"make_cohort: n must be a positive integer (subjects), got {n!r}")
    try:
        low, high = (float(v) for v in age_range)
    except (TypeError, ValueError):
        low, high = math.nan, math.nan
    if not (MIN_AGE <= low <= high <= MAX_AGE):
        raise ValueError(
            f"make_cohort: age_range must be (youngest, oldest) in years with "
            f"{MIN_AGE:g} <= youngest <= oldest <= {MAX_AGE:g}, got {age_range!r}"
        )
    if not (isinstance(sex_ratio, (int, float)) and 0.0 <= sex_ratio <= 1.0):
        raise ValueError(
            f"make_cohort: sex_ratio is the fraction of men in [0, 1], got {sex_ratio!r}"
        )
    rng = np.random.default_rng(seed)
    n_male = round(n * sex_ratio)
    sexes = rng.permutation(["M"] * n_male + ["F"] * (n - n_male))
    ages = rng.uniform(low, high, n)
    return [_individual(rng, float(ages[i]), str(sexes[i]), f"sub-{i:03d}") for i in range(n)]
