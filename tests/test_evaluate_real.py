"""training/evaluate_real.py: which checkpoints it scores, and what it says about bad ones."""

import numpy as np
import pytest
from training_scripts import load_training_script


def _tool():
    return load_training_script("evaluate_real.py")


def test_a_runs_snapshots_and_their_weight_averages_are_told_apart(tmp_path):
    """A run with --snapshots and --weight-average keeps step_N.weights.h5 and
    step_N.average.weights.h5: each is scored once, under its own label, with its own weights."""
    from medzoo.registry import build

    model = build("unet3d_mrbrains")
    model.save_weights(tmp_path / "step_000250.weights.h5")
    model.set_weights([w + 1.0 for w in model.get_weights()])
    model.save_weights(tmp_path / "step_000250.average.weights.h5")
    seen = [
        (label, step, float(np.asarray(m.get_weights()[0]).ravel()[0]))
        for label, step, m in _tool().checkpoints([str(tmp_path)], None)
    ]
    assert [(label, step) for label, step, _ in seen] == [
        (f"{tmp_path}@250 average", 250),
        (f"{tmp_path}@250", 250),
    ]
    assert seen[0][2] == pytest.approx(seen[1][2] + 1.0)


def test_a_missing_weights_file_is_named_with_what_to_give_instead(capsys):
    with pytest.raises(SystemExit) as stop:
        _tool().main(["missing/step_000250.weights.h5"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "missing/step_000250.weights.h5: no such weights file" in err and "medzoo list" in err
