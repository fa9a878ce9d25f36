"""The running average of weights: its arithmetic, that applying it leaves the model's own
weights alone, and its weights file."""

from __future__ import annotations

import warnings

import h5py
import keras
import numpy as np
import pytest

from medzoo.train.averaging import WeightAverage, read_weights, write_weights


def tiny_model() -> keras.Model:
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(2)(inputs))


def set_all(model: keras.Model, value: float) -> None:
    model.set_weights([np.full_like(w, value) for w in model.get_weights()])


def test_average_follows_the_decay_formula_and_applies_without_losing_the_weights():
    model = tiny_model()
    set_all(model, 1.0)
    average = WeightAverage(model, decay=0.75)
    set_all(model, 3.0)
    average.update(model)  # 0.75 * 1 + 0.25 * 3
    set_all(model, 5.0)
    average.update(model)  # 0.75 * 1.5 + 0.25 * 5
    with average.applied(model) as applied:
        assert all(np.allclose(w, 2.375) for w in applied.get_weights())
    assert all(np.allclose(w, 5.0) for w in model.get_weights())


def test_small_updates_are_not_lost_to_float32_rounding():
    model = tiny_model()
    set_all(model, 1000.0)
    average = WeightAverage(model, decay=0.9999)
    set_all(model, 1001.0)
    for _ in range(1000):
        average.update(model)
    expected = 1001.0 - 0.9999**1000
    assert all(np.allclose(w, expected, atol=1e-4) for w in average.weights)


def test_the_weights_file_round_trips_and_leaves_the_model_alone(tmp_path):
    model = tiny_model()
    set_all(model, 2.0)
    average = WeightAverage(model, decay=0.5)
    set_all(model, 4.0)
    average.update(model)
    path = tmp_path / "average.weights.h5"
    average.save(model, path)
    assert not list(tmp_path.glob(".*tmp*"))
    other = WeightAverage(model, decay=0.5)
    other.load(model, path)
    assert all(np.allclose(w, 3.0) for w in other.weights)
    assert all(np.allclose(w, 4.0) for w in model.get_weights())
    fresh = tiny_model()
    fresh.load_weights(path)  # an ordinary weights file of the architecture
    assert all(np.allclose(w, 3.0) for w in fresh.get_weights())


def test_weights_files_of_a_compiled_model_hold_no_optimizer_state(tmp_path):
    """A training run's weight files (snapshots, the average, the resume weights committed for
    the next session) carry the model's weights only: with Adam's state they were 3x the size."""
    model = tiny_model()
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), verbose=0)
    set_all(model, 2.0)
    path = tmp_path / "step.weights.h5"
    write_weights(model, path)
    with h5py.File(path) as f:
        assert "optimizer" not in f and "layers" in f
    fresh = tiny_model()
    fresh.load_weights(path)  # as --init-weights loads it, before compiling
    assert all(np.allclose(w, 2.0) for w in fresh.get_weights())
    set_all(model, 5.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "skipping the optimizer's variables"
        read = read_weights(model, path)  # a compiled model: the best weights at a run's end
    assert all(np.allclose(w, 2.0) for w in read)
    assert all(np.allclose(w, 5.0) for w in model.get_weights())


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5, 1.5])
def test_a_decay_outside_the_open_unit_interval_is_refused(decay):
    with pytest.raises(ValueError, match=r"lie in \(0, 1\)"):
        WeightAverage(tiny_model(), decay)
