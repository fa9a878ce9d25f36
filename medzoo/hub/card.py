"""The model card (``README.md`` of a preset) rendered from its ``metadata.json``: what the model
does, what it expects and returns, how well it did on which data, where the training data came
from, the licence, how to load it, and how it was made."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

#: Licence ids the Hugging Face Hub knows; any other licence is written as "other" + its name.
_HF_LICENSES = {
    "apache-2.0",
    "mit",
    "bsd-2-clause",
    "bsd-3-clause",
    "cc0-1.0",
    "cc-by-4.0",
    "cc-by-sa-4.0",
    "cc-by-nc-4.0",
    "cc-by-nc-sa-4.0",
    "cc-by-nd-4.0",
    "cc-by-nc-nd-4.0",
    "gpl-3.0",
    "lgpl-3.0",
    "mpl-2.0",
}


def render_model_card(metadata: Mapping[str, Any]) -> str:
    """Markdown model card with a Hugging Face metadata header, from a preset's metadata.

    Two optional metadata entries: ``notice`` (text), written as the card's first line (e.g.
    that every metric was measured on synthetic scans only), and ``real_scan_checks`` (a
    mapping: ``summary`` text, optional ``command``, and ``tables``, a list of ``{"title",
    "columns", "rows"}`` with one list of cells per row), written as a "Real-scan checks"
    section after the evaluation table.
    """
    spec = metadata["spec"]
    inputs, outputs = spec["input"], spec["output"]
    name, version = metadata["name"], metadata["version"]
    licence = metadata["license"]
    hf_licence = licence.lower()
    header = ["---", "library_name: keras", "tags:", "- medzoo", "- medical-imaging", "- 3d"]
    header.append(f"- {spec['task'].replace('_', '-')}")
    if hf_licence in _HF_LICENSES:
        header.append(f"license: {hf_licence}")
    else:
        header += ["license: other", f"license_name: {json.dumps(licence)}"]
    header.append("---")

    notice = metadata.get("notice")
    lines = [
        *header,
        "",
        *([f"**{_text(notice)}**", ""] if notice else []),
        f"# {name} {version}",
        "",
        spec["description"],
        "",
        "## Use",
        "",
        "```python",
        "import medzoo",
        "",
        f'model = medzoo.load("{name}", version="{version}")  # verified download, cached',
        "```",
        "",
        "Research use only; not a medical device. Check the results on scans from your own "
        "scanners and population before relying on them.",
        "",
        "## Input",
        "",
        f"- channels (last array axis, in this order): {', '.join(inputs['channels'])}",
        f"- orientation: {inputs['orientation']}; voxel spacing (x, y, z): "
        f"{_mm(inputs['spacing_mm'])} mm",
        f"- intensity normalisation: `{json.dumps(inputs['normalization'])}`, "
        f"value range {tuple(inputs['value_range'])}",
        f"- training patch (z, y, x): {_voxels(inputs['patch_size'])} voxels"
        + (
            " (the only size accepted)"
            if inputs["fixed_size"]
            else f"; sizes must be multiples of {_voxels(inputs['size_multiple'])}"
        ),
        "- arrays are (batch, z, y, x, channels), the axis order SimpleITK gives",
        "",
        "## Output",
        "",
        f"- kind: {outputs['kind']}",
    ]
    if outputs.get("units"):
        lines.append(f"- units: {outputs['units']}")
    if outputs.get("spacing_mm"):
        lines.append(f"- voxel spacing (x, y, z): {_mm(outputs['spacing_mm'])} mm")
    if outputs.get("labels"):
        lines += ["", "| label | name |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in outputs["labels"].items()]
    if outputs.get("left_right_pairs"):
        pairs = ", ".join(f"{a}<->{b}" for a, b in outputs["left_right_pairs"])
        lines.append(f"\nLeft/right label pairs (swapped by a left-right flip): {pairs}")

    lines += ["", "## Evaluation"]
    lines += _evaluation(metadata["metrics"])

    if metadata.get("real_scan_checks"):
        lines += _real_scan_checks(metadata["real_scan_checks"])

    lines += ["", "## Training data", ""]
    lines += [f"- {key}: {_text(value)}" for key, value in metadata["training_data"].items()]

    lines += [
        "",
        "## Training",
        "",
        f"- architecture: {spec['builder']} ({metadata['parameters']:,} parameters), "
        f"configuration `{json.dumps(spec['config'])}`",
        f"- loss: {spec['loss']}",
        f"- command: `{metadata['command']}`" if metadata["command"] else "- command: not recorded",
        f"- code commit: {metadata['commit'] or 'not recorded'}",
        f"- medzoo {metadata['medzoo_version']}, Keras {metadata['keras_version']} "
        f"({metadata['backend']} backend), saved {metadata['created']}",
        "",
        "## Licence",
        "",
        f"The weights are released under {licence}. Check the terms of the training data too.",
        "",
    ]
    return "\n".join(lines)


def _evaluation(metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One table per distinct ``data`` text (in the order the metrics first name it), the text
    written once above its table rather than in every row."""
    by_data: dict[str, list[str]] = {}
    for metric, entry in metrics.items():
        by_data.setdefault(entry["data"], []).append(f"| {metric} | {entry['value']:.4g} |")
    lines = []
    for data, rows in by_data.items():
        lines += ["", f"Measured on: {data}", "", "| metric | value |", "|---|---|", *rows]
    return lines


def _real_scan_checks(checks: Mapping[str, Any]) -> list[str]:
    lines = ["", "## Real-scan checks", "", _text(checks["summary"])]
    if checks.get("command"):
        lines += ["", "```bash", checks["command"], "```"]
    for table in checks.get("tables", []):
        columns = table["columns"]
        lines += ["", table["title"], "", "| " + " | ".join(columns) + " |"]
        lines.append("|" + "---|" * len(columns))
        lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table["rows"]]
    return lines


def _cell(value: Any) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _mm(values: Any) -> str:
    return " x ".join(f"{float(v):g}" for v in values)


def _voxels(values: Any) -> str:
    return "x".join(str(v) for v in values)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
