"""Tests for seqlib.tlb_keras: shapes, attention weights, config round-trips, saving, bad input."""

import numpy as np
import pytest

tk = pytest.importorskip("seqlib.tlb_keras")
import keras  # noqa: E402  (imported after seqlib.tlb_keras chose the torch backend)
from keras import ops  # noqa: E402

from seqlib.tlb import TLBConfig  # noqa: E402

# 8×8 images, 2×2 patches: N = 16 tokens in T = 4 chunks of K = 4; L = 3 latents.
TINY = TLBConfig(
    image_size=8,
    patch_size=2,
    in_channels=3,
    dim=8,
    chunk_size=4,
    num_latents=3,
    num_layers=3,
    r=2,
    num_heads=2,
    num_classes=5,
)


def tiny(**overrides):
    keras.utils.set_random_seed(0)
    return tk.TemporalLatentBottleneck.from_tlb_config(
        TLBConfig(**{**TINY.__dict__, **overrides})
    )


def images(n=4, seed=0):
    return np.random.default_rng(seed).random((n, 8, 8, 3), dtype=np.float32)


def np_(x):
    return ops.convert_to_numpy(x)


def test_shapes_and_weight_rows():
    model = tiny()
    logits, weights = model(images(), return_attention=True)
    assert tuple(logits.shape) == (4, 5)
    assert tuple(weights.shape) == (4, 4, 2, 3, 4)  # (B, T, h, L, K)
    np.testing.assert_allclose(
        np_(weights).sum(-1), 1.0, atol=1e-5
    )  # each latent's weights over its chunk
    chunks = model.patch_embedding(images())
    assert tuple(chunks.shape) == (4, 4, 4, 8)  # (B, T, K, D)


def test_cross_attention_every_r_layers():
    cell = tiny().cell
    assert [b.name for b in cell.cross_blocks] == [
        "cross_0",
        "cross_2",
    ]  # layers 0 and 2 with r = 2
    assert len(tiny(r=1).cell.cross_blocks) == 3


def test_keras_example_layout_counts_sublayers_and_shares_ffns(monkeypatch):
    """ℓ = 4, r = 2: per chunk 6 self- and 3 cross-attention sub-layers, each module's FFN used after both."""
    cell = tiny(num_layers=4, r=2, layout="keras-example").cell
    assert [m.name for m in cell.perceptual_module] == [
        "self_0",
        "cross_0",
        "self_1",
        "self_2",
        "cross_2",
        "self_3",
    ]
    events = []
    attention_call, ffn_call = (
        tk.NormedAttention.call,
        tk.FeedForwardBlock.call,
    )

    def spy_attention(layer, query, key, value, *args, **kwargs):
        events.append(("self" if key is query else "cross", layer.name))
        return attention_call(layer, query, key, value, *args, **kwargs)

    def spy_ffn(layer, x, *args, **kwargs):
        events.append(("ffn", id(layer)))
        return ffn_call(layer, x, *args, **kwargs)

    monkeypatch.setattr(tk.NormedAttention, "call", spy_attention)
    monkeypatch.setattr(tk.FeedForwardBlock, "call", spy_ffn)
    chunk, slow = (
        ops.ones((2, 4, 8)),
        ops.ones((2, 3, 8)),
    )  # (B, K, D), (B, L, D)
    cell.keras_example_fast_stream(chunk, slow)
    kinds = [kind for kind, _ in events]
    assert (
        kinds.count("self") == 6
        and kinds.count("cross") == 3
        and kinds.count("ffn") == 9
    )
    ffn_ids = [i for kind, i in events if kind == "ffn"]
    assert (
        len(set(ffn_ids)) == 6
    )  # 9 FFN calls on 6 FFNs: the cross calls reuse their module's
    modules = [id(m.ffn) for m in cell.perceptual_module]
    assert ffn_ids == [modules[j] for j in (0, 0, 1, 2, 2, 3, 4, 4, 5)]
    # 3 attention sub-layers more than the "separate" layout (whose 4 + 2 blocks have 6 FFNs too)
    example, separate = (
        tiny(num_layers=4, r=2, layout="keras-example"),
        tiny(num_layers=4, r=2),
    )
    example(images()), separate(images())  # build
    attention = separate.cell.bottleneck.attention.count_params()
    assert example.count_params() - separate.count_params() == 3 * attention


def test_num_classes_configurable():
    assert tuple(tiny(num_classes=3)(images()).shape) == (4, 3)
    assert tuple(tiny(num_classes=100)(images()).shape) == (4, 100)


def test_attention_weights_are_returned_not_stored():
    model = tiny()
    logits, weights = model(images(), return_attention=True)
    np.testing.assert_allclose(
        np_(model.attention_maps(images())), np_(weights), atol=1e-6
    )
    np.testing.assert_allclose(np_(model(images())), np_(logits), atol=1e-6)
    for layer in model._flatten_layers(include_self=True, recursive=True):
        stored = [
            k
            for k, v in vars(layer).items()
            if "score" in k.lower() and v is not None
        ]
        assert not stored, f"{layer.name} keeps {stored}"


def test_rnn_equals_a_python_loop_over_cell_step():
    """The RNN carries the slow stream: unrolling ``cell.step`` by hand gives the same weights."""
    model = tiny()
    _, weights = model(images(), return_attention=True)
    chunks = model.patch_embedding(images())  # (B, T, K, D)
    slow = ops.reshape(
        model.cell.get_initial_state(batch_size=4)[0], (4, 3, 8)
    )
    for t in range(4):
        _, slow, w = model.cell.step(chunks[:, t], slow)
        np.testing.assert_allclose(np_(w), np_(weights[:, t]), atol=1e-5)


def test_recurrence_is_causal_over_chunks():
    """The slow stream at chunk t depends on chunks 0..t only: changing the last patch row changes
    the last chunk's weights and nothing before it."""
    model = tiny()
    x = images()
    y = x.copy()
    y[:, 6:] = (
        1.0 - y[:, 6:]
    )  # last row of patches = the last chunk (K = 4 = patches per row)
    wx, wy = np_(model.attention_maps(x)), np_(model.attention_maps(y))
    np.testing.assert_allclose(wx[:, :3], wy[:, :3], atol=1e-6)
    assert np.abs(wx[:, 3] - wy[:, 3]).max() > 1e-4


def test_initial_latents_are_distinct_and_trained():
    model = tiny()
    loss = ops.sum(model(images()))
    loss.backward()
    latents = model.cell.initial_latents
    assert (
        latents.value.grad is not None
        and float(latents.value.grad.abs().sum()) > 0
    )
    values = latents.value.detach()
    assert float((values[0] - values[1]).abs().max()) > 0


def test_layer_configs_round_trip():
    for layer in [
        tk.ChunkedPatchEmbedding(
            image_size=8, patch_size=2, dim=8, chunk_size=4, name="pe"
        ),
        tk.FeedForwardBlock(dim=8, expansion=3, dropout=0.1),
        tk.NormedAttention(dim=8, num_heads=2, dropout=0.1),
        tk.AttentionBlock(
            dim=8,
            num_heads=2,
            ffn_expansion=2,
            attn_dropout=0.1,
            ffn_dropout=0.2,
        ),
        tk.PerceptualModule(
            dim=8,
            num_heads=2,
            has_cross=True,
            ffn_expansion=2,
            attn_dropout=0.1,
        ),
        tk.TLBCell(
            dim=8, chunk_size=4, num_latents=3, num_layers=3, r=2, num_heads=2
        ),
        tk.TLBCell(
            dim=8,
            chunk_size=4,
            num_latents=3,
            num_layers=3,
            r=2,
            num_heads=2,
            layout="keras-example",
        ),
    ]:
        config = layer.get_config()
        assert type(layer).from_config(config).get_config() == config


def test_model_from_config_round_trip_gives_same_outputs():
    model = tiny(num_classes=7, ffn_expansion=2)
    expected = np_(model(images()))
    config = model.get_config()
    clone = tk.TemporalLatentBottleneck.from_config(config)
    assert clone.get_config() == config
    clone.build((None, 8, 8, 3))
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(np_(clone(images())), expected, atol=1e-6)


@pytest.mark.parametrize("layout", ["separate", "keras-example"])
def test_save_and_load_trained_model(tmp_path, layout):
    model = tiny(layout=layout)
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(images(16), np.arange(16) % 5, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "tlb.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, tk.TemporalLatentBottleneck)
    np.testing.assert_array_equal(np_(loaded(images())), np_(model(images())))
    np.testing.assert_array_equal(
        np_(loaded.attention_maps(images())),
        np_(model.attention_maps(images())),
    )


def test_heatmap_and_upsampling():
    weights = tiny().attention_maps(images())
    heat = tk.slow_stream_heatmap(weights, grid=4)
    assert tuple(heat.shape) == (4, 4, 4)
    np.testing.assert_allclose(
        np_(heat)[:, 0],
        np_(ops.mean(ops.max(weights, axis=3), axis=2))[:, 0],
        atol=1e-6,
    )
    assert tuple(tk.upsample_heatmap(heat, 8).shape) == (4, 8, 8)


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="expected shape"):
        tiny()(
            np.zeros((2, 8, 8, 1), dtype="float32")
        )  # one channel instead of three
    with pytest.raises(ValueError, match="chunk_size"):
        tk.TemporalLatentBottleneck(image_size=8, patch_size=2, chunk_size=5)
    with pytest.raises(ValueError, match="num_heads"):
        tk.TemporalLatentBottleneck(dim=10, num_heads=3)
    with pytest.raises(ValueError, match="layout"):
        tk.TemporalLatentBottleneck(layout="keras")
    with pytest.raises(ValueError, match="multiple of patch_size"):
        tk.TemporalLatentBottleneck(image_size=30, patch_size=4)
