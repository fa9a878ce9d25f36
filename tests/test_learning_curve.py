"""training/learning_curve.py: a run's curve merged from its session logs, and its last third."""

from pathlib import Path

import pytest
from training_scripts import load_training_script

HEADER = "step,loss,seconds_per_step,val_dice_tissues,val_dice_gm\n"


def _tool():
    return load_training_script("learning_curve.py")


def _log(path: Path, rows: str) -> Path:
    path.write_text(HEADER + rows)
    return path


def test_a_later_session_replaces_the_rows_of_the_steps_it_trained_again(tmp_path):
    """A run continued from step 250's weights keeps its own step-500 validation, not the
    abandoned branch's; training-loss rows are not validations."""
    tool = _tool()
    first = _log(tmp_path / "a.csv", "250,,,0.5,0.6\n500,,,0.4,0.5\n500,1.2,3.0,,\n")
    second = _log(tmp_path / "b.csv", "500,,,0.7,0.8\n750,,,0.75,0.85\n")
    rows = tool.merge_validation_rows([first, second], "val_dice_tissues")
    assert list(rows) == [250, 500, 750]
    assert rows[500] == {"val_dice_tissues": 0.7, "val_dice_gm": 0.8}


def test_the_last_third_of_a_linear_curve_has_its_slope_and_rise():
    """Steps 0-3000 every 250 rising 0.01 per 1,000 steps: the last third starts at step 2000
    (5 validations), rises 0.01 and spans exactly its values."""
    tool = _tool()
    curve = {s: 0.5 + 0.01 * s / 1000 for s in range(0, 3001, 250)}
    flat = tool.last_third(curve)
    assert (flat.first, flat.last, flat.points) == (2000, 3000, 5)
    assert flat.slope_per_1000 == pytest.approx(0.01)
    assert flat.rise == pytest.approx(0.01)
    assert (flat.low, flat.high) == pytest.approx((0.52, 0.53))


def test_too_few_validations_and_a_wrong_column_are_refused_with_the_fix(tmp_path):
    tool = _tool()
    with pytest.raises(ValueError, match="--val-every"):
        tool.last_third({250: 0.5, 500: 0.6})
    with pytest.raises(ValueError, match="--metric"):
        tool.merge_validation_rows([_log(tmp_path / "a.csv", "")], "val_psnr")


def test_the_command_prints_the_table_with_the_best_and_last_rows(tmp_path, capsys):
    tool = _tool()
    log = _log(
        tmp_path / "a.csv", "".join(f"{s},,,{0.5 + s / 1e5},0.6\n" for s in range(250, 3001, 250))
    )
    assert (
        tool.main([str(log), "--columns", "val_dice_tissues,val_dice_gm", "--every", "1000"]) == 0
    )
    out = capsys.readouterr().out
    assert "| 1000 | 0.510 | 0.600 |" in out and "| 3000 (best) | 0.530 | 0.600 |" in out
    assert "last third: steps 2000-3000 (5 validations)" in out
    assert tool.main([str(tmp_path / "missing.csv")]) == 2
