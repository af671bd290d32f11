"""Tests for seqlib.rvt_keras: the slides' walk-through shapes, gates, states, config round-trips."""

import numpy as np
import pytest

rk = pytest.importorskip("seqlib.rvt_keras")
import keras  # noqa: E402  (after seqlib.rvt_keras chose the torch backend)
from keras import ops  # noqa: E402


def np_(x):
    return ops.convert_to_numpy(x)


def walk_through_data(seed=0):
    """The slides' random data: 2 samples, sequence length 2, 3×3 images with 1 channel."""
    return np.random.default_rng(seed).random(
        (2, 2, 3, 3, 1), dtype=np.float32
    )


def block(**kw):
    keras.utils.set_random_seed(0)
    return rk.RVTBlock(1, 4, 8, **kw)


def test_walk_through_shapes_and_gate_range():
    rec = rk.run_sequence(block(), walk_through_data())
    assert len(rec["out"]) == 2
    for key in ("conv", "gate", "block", "grid", "mlp", "combined"):
        assert tuple(rec[key][0].shape) == (2, 3, 3, 4), key
    assert tuple(rec["flat"][0].shape) == (2, 1, 36)
    assert tuple(rec["h"][1].shape) == tuple(rec["c"][1].shape) == (2, 8)
    gate = np_(rec["gate"][0])
    assert gate.min() > 0 and gate.max() < 1
    np.testing.assert_allclose(
        np_(rec["block"][0]), np_(rec["conv"][0]) * gate, rtol=1e-6
    )
    np.testing.assert_allclose(
        np_(rec["out"][1]), np_(rec["h"][1])
    )  # one LSTM step: output = hidden


def test_states_are_carried_between_steps():
    b, x = block(), walk_through_data()
    rec = rk.run_sequence(b, x)
    zero_start = b(x[:, 1])  # step 2 alone, from zero states
    assert not np.allclose(np_(rec["h"][1]), np_(zero_start[1]))
    again = b(x[:, 1], initial_state=[rec["h"][0], rec["c"][0]])
    np.testing.assert_allclose(
        np_(again[1]), np_(rec["h"][1]), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    "layer",
    [
        lambda: rk.BlockSelfAttention(3, kernel_size=3, name="b"),
        lambda: rk.GridSelfAttention(3, dilation_rate=3, name="g"),
        lambda: rk.MLPBlock([5, 4], 3, name="m"),
        lambda: rk.RVTBlock(
            1, 4, 8, hidden_units=(6, 5), dilation_rate=1, name="r"
        ),
    ],
)
def test_get_config_round_trip(layer):
    keras.utils.set_random_seed(0)
    a = layer()
    x = np.random.default_rng(1).random(
        (2, 3, 3, 1 if isinstance(a, rk.RVTBlock) else 3), dtype=np.float32
    )
    ya = a(x)
    b = type(a).from_config(a.get_config())
    assert b.get_config() == a.get_config()
    b(x)
    b.set_weights(a.get_weights())
    for u, v in zip(keras.tree.flatten(ya), keras.tree.flatten(b(x))):
        np.testing.assert_allclose(np_(u), np_(v), rtol=1e-6)


def test_serialize_round_trip():
    a = block()
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(a)
    )
    assert (
        isinstance(restored, rk.RVTBlock)
        and restored.get_config() == a.get_config()
    )


def test_dilated_grid_branch_reaches_two_pixels_away():
    keras.utils.set_random_seed(0)
    layer = rk.GridSelfAttention(1, dilation_rate=2)
    layer.build((1, 5, 5, 1))
    layer.conv.kernel.assign(np.ones((3, 3, 1, 1), np.float32))
    layer.conv.bias.assign(np.zeros(1, np.float32))
    x = np.zeros((1, 5, 5, 1), np.float32)
    x[0, 2, 2, 0] = 1.0
    out = np_(layer(x))[0, :, :, 0]
    assert (
        out[0, 0] == 1 and out[2, 4] == 1 and out[1, 1] == 0
    )  # taps every second pixel


def test_bad_input_channels():
    with pytest.raises(ValueError, match=r"expected shape \(B, H, W, 1\)"):
        block()(np.zeros((2, 3, 3, 2), np.float32))
    with pytest.raises(ValueError, match="clips"):
        rk.run_sequence(block(), np.zeros((2, 3, 3, 1), np.float32))


# --- the one Keras bootstrap (seqlib.keras_backend) ----------------------------------------------
def test_keras_modules_use_the_one_bootstrap():
    import inspect

    from seqlib import keras_backend, shapes
    from seqlib import tlb_keras as tk

    assert (
        keras_backend.require_torch_backend() is keras
        and keras.backend.backend() == "torch"
    )
    for module in (rk, tk):
        source = inspect.getsource(module)
        assert (
            "KERAS_BACKEND" not in source
            and "require_torch_backend()" in source
        )
    assert tk.expect_shape is shapes.expect_shape and not hasattr(
        tk, "_expect_shape"
    )


def test_bootstrap_refuses_keras_imported_with_another_backend(monkeypatch):
    from seqlib.keras_backend import require_torch_backend

    monkeypatch.setattr(
        keras.backend, "backend", lambda: "jax"
    )  # as if keras had been imported on jax
    with pytest.raises(ImportError, match="torch backend, got 'jax'"):
        require_torch_backend()
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    with pytest.raises(ImportError, match="KERAS_BACKEND is 'jax'"):
        require_torch_backend()
