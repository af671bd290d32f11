"""Temporal Latent Bottleneck in Keras 3 (torch backend): a recurrent cell with
fast and slow streams.

Didolkar et al. (2022). The image is cut into N patch tokens and the tokens
into T = N/K chunks of K. :class:`TLBCell` is a Keras RNN cell: at each step it
runs one chunk through the *fast stream* (self-attention inside the chunk and,
every r layers, cross-attention to the slow stream), then updates the *slow
stream*, L latent vectors, by one cross-attention from the latents to the
chunk. The fast stream has two layouts (``layout``), described in
:mod:`seqlib.tlb`: ``"separate"`` (the default and the one chapter 11 trains:
ℓ self-attention and ⌈ℓ/r⌉ cross-attention blocks, each with its own FFN; 4
and 2 for ℓ = 4, r = 2) and ``"keras-example"`` (the sub-layer order and FFN
sharing of the Keras example "When Recurrence meets Transformers": every module
of its list of ℓ + ⌈ℓ/r⌉ runs as self-attention and every r-th again as
cross-attention, with one FFN per module; 6 and 3 for ℓ = 4, r = 2). Neither is
the example's whole model (:mod:`seqlib.tlb` lists the other differences: its
L = K latents start from zeros, it has no final layer norm, ...).
``keras.layers.RNN`` carries the slow stream from chunk to chunk as the cell's
state. Attention weights are not stored on layers: the cell *emits* the
slow-stream update's weights as part of its output, and
``model(images, return_attention=True)`` returns them (the PyTorch twin records
them with :func:`seqlib.attention.record` instead; Keras layers are not torch
modules). Only ``keras.ops`` and Keras layers are used, so the module runs on
the torch backend without TensorFlow (set up once, by
:func:`seqlib.keras_backend.require_torch_backend`, so that shapes are checked
with :func:`seqlib.shapes.expect_shape`); :mod:`seqlib.tlb` is its PyTorch twin
with the same structure. Images are channels-last ``(B, H, W, C)``. Shape
letters: B batch, H/W image size, C channels, P patch side, N patches, K tokens
per chunk, T chunks, L latents, D width, h heads.
"""

from __future__ import annotations

from seqlib.keras_backend import require_torch_backend

# Keras 3 on the torch backend: Keras tensors are torch tensors.
keras = require_torch_backend()

from keras import layers, ops  # noqa: E402

from seqlib.shapes import expect_shape  # noqa: E402
from seqlib.tlb import (  # noqa: E402
    TLBConfig,
    check_config,
    cross_layers,
    keras_example_modules,
)  # noqa: E402

PACKAGE = "seqlib_tlb"
# torch's LayerNorm epsilon (Keras' default is 1e-3), so the twins agree
EPS = 1e-5


def _layer_norm(name: str) -> layers.LayerNormalization:
    return layers.LayerNormalization(epsilon=EPS, name=name)


# --- blocks ------------------------------------------------------------------
@keras.saving.register_keras_serializable(package=PACKAGE)
class ChunkedPatchEmbedding(layers.Layer):
    """Patches → tokens (strided Conv2D), + learned positions, layer norm, cut
    into chunks of K."""

    def __init__(
        self,
        *,
        image_size: int,
        patch_size: int,
        dim: int,
        chunk_size: int,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.image_size, self.patch_size, self.dim, self.chunk_size = (
            image_size,
            patch_size,
            dim,
            chunk_size,
        )
        self.num_patches = (image_size // patch_size) ** 2
        self.proj = layers.Conv2D(
            dim, kernel_size=patch_size, strides=patch_size, name="proj"
        )
        self.norm = _layer_norm("norm")

    def build(self, input_shape):
        self.proj.build(input_shape)
        self.norm.build((None, self.num_patches, self.dim))
        self.position_embedding = self.add_weight(
            shape=(self.num_patches, self.dim),
            name="position_embedding",
            initializer=keras.initializers.RandomNormal(stddev=0.02),
        )  # (N, D)

    def call(self, images):
        """(B, H, W, C) → chunks (B, T, K, D)."""
        x = self.proj(images)  # (B, H/P, W/P, D)
        x = ops.reshape(
            x, (-1, self.num_patches, self.dim)
        )  # (B, N, D), row-major over the grid
        x = self.norm(x + self.position_embedding)  # (B, N, D)
        return ops.reshape(
            x,
            (
                -1,
                self.num_patches // self.chunk_size,
                self.chunk_size,
                self.dim,
            ),
        )  # (B, T, K, D)

    def get_config(self):
        return {
            **super().get_config(),
            "image_size": self.image_size,
            "patch_size": self.patch_size,
            "dim": self.dim,
            "chunk_size": self.chunk_size,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class FeedForwardBlock(layers.Layer):
    """``x + W_2 drop(GELU(W_1 LN(x)))`` with ``W_1`` of width
    ``expansion·D``."""

    def __init__(
        self, *, dim: int, expansion: int = 4, dropout: float = 0.0, **kwargs
    ):
        super().__init__(**kwargs)
        self.dim, self.expansion, self.dropout = dim, expansion, dropout
        self.norm = _layer_norm("norm")
        self.hidden = layers.Dense(
            expansion * dim, activation="gelu", name="hidden"
        )
        self.drop = layers.Dropout(dropout)
        self.out = layers.Dense(dim, name="out")

    def build(self, input_shape):
        self.norm.build(input_shape)
        self.hidden.build(input_shape)
        self.out.build((*input_shape[:-1], self.expansion * self.dim))

    def call(self, x, training=None):
        """(B, N, D) → (B, N, D)."""
        return x + self.out(
            self.drop(self.hidden(self.norm(x)), training=training)
        )

    def get_config(self):
        return {
            **super().get_config(),
            "dim": self.dim,
            "expansion": self.expansion,
            "dropout": self.dropout,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class NormedAttention(layers.Layer):
    """``query + MHA(LN_q(query), LN_k(key), LN_v(value))`` with Keras'
    ``MultiHeadAttention``.

    Heads have width ``d = D / h`` (as in
    :class:`seqlib.attention.MultiHeadAttention`).
    """

    def __init__(
        self, *, dim: int, num_heads: int, dropout: float = 0.0, **kwargs
    ):
        super().__init__(**kwargs)
        self.dim, self.num_heads, self.dropout = dim, num_heads, dropout
        self.query_norm, self.key_norm, self.value_norm = (
            _layer_norm(f"{n}_norm") for n in ("query", "key", "value")
        )
        self.attention = layers.MultiHeadAttention(
            num_heads=num_heads,
            key_dim=dim // num_heads,
            dropout=dropout,
            name="attention",
        )

    def build(self, query_shape, key_shape=None, value_shape=None):
        key_shape = query_shape if key_shape is None else key_shape
        value_shape = key_shape if value_shape is None else value_shape
        for norm, shape in (
            (self.query_norm, query_shape),
            (self.key_norm, key_shape),
            (self.value_norm, value_shape),
        ):
            norm.build(shape)
        self.attention.build(query_shape, value_shape, key_shape)

    def call(self, query, key, value, return_attention=False, training=None):
        """(B, M, D) queries attend to (B, S, D) keys/values → (B, M, D) [,
        weights (B, h, M, S)]."""
        out = self.attention(
            self.query_norm(query),
            self.value_norm(value),
            self.key_norm(key),
            return_attention_scores=return_attention,
            training=training,
        )  # Keras: (q, v, k)
        out, weights = out if return_attention else (out, None)
        return (query + out, weights) if return_attention else query + out

    def get_config(self):
        return {
            **super().get_config(),
            "dim": self.dim,
            "num_heads": self.num_heads,
            "dropout": self.dropout,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class AttentionBlock(layers.Layer):
    """:class:`NormedAttention` then :class:`FeedForwardBlock`: one layer of
    either stream."""

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        ffn_expansion: int = 4,
        attn_dropout: float = 0.0,
        ffn_dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.dim, self.num_heads, self.ffn_expansion = (
            dim,
            num_heads,
            ffn_expansion,
        )
        self.attn_dropout, self.ffn_dropout = attn_dropout, ffn_dropout
        self.attention = NormedAttention(
            dim=dim,
            num_heads=num_heads,
            dropout=attn_dropout,
            name="attention",
        )
        self.ffn = FeedForwardBlock(
            dim=dim, expansion=ffn_expansion, dropout=ffn_dropout, name="ffn"
        )

    def build(self, query_shape, key_shape=None, value_shape=None):
        self.attention.build(query_shape, key_shape, value_shape)
        self.ffn.build(query_shape)

    def call(self, query, key, value, return_attention=False, training=None):
        """(B, M, D), (B, S, D), (B, S, D) → (B, M, D) [, (B, h, M, S)]."""
        out = self.attention(
            query,
            key,
            value,
            return_attention=return_attention,
            training=training,
        )
        x, weights = out if return_attention else (out, None)
        x = self.ffn(x, training=training)  # (B, M, D)
        return (x, weights) if return_attention else x

    def get_config(self):
        return {
            **super().get_config(),
            "dim": self.dim,
            "num_heads": self.num_heads,
            "ffn_expansion": self.ffn_expansion,
            "attn_dropout": self.attn_dropout,
            "ffn_dropout": self.ffn_dropout,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class PerceptualModule(layers.Layer):
    """One module of the Keras example's fast-stream list
    (``layout="keras-example"``).

    ``FFN(Att(query, key, value))`` with the module's self-attention
    ``attention``, or with ``cross_attention`` when ``cross=True``; both calls
    use the module's one
    :class:`FeedForwardBlock` ``ffn``. Only modules the cell calls as
    cross-attention (``has_cross``) have cross-attention weights. (B, M, D),
    (B, S, D), (B, S, D) → (B, M, D).
    """

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        has_cross: bool,
        ffn_expansion: int = 4,
        attn_dropout: float = 0.0,
        ffn_dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.dim, self.num_heads, self.has_cross, self.ffn_expansion = (
            dim,
            num_heads,
            has_cross,
            ffn_expansion,
        )
        self.attn_dropout, self.ffn_dropout = attn_dropout, ffn_dropout
        self.attention = NormedAttention(
            dim=dim,
            num_heads=num_heads,
            dropout=attn_dropout,
            name="attention",
        )
        self.cross_attention = (
            NormedAttention(
                dim=dim,
                num_heads=num_heads,
                dropout=attn_dropout,
                name="cross_attention",
            )
            if has_cross
            else None
        )
        self.ffn = FeedForwardBlock(
            dim=dim, expansion=ffn_expansion, dropout=ffn_dropout, name="ffn"
        )

    def build(self, query_shape, key_shape=None, value_shape=None):
        """Self-attention on ``query_shape``; cross-attention from it to
        ``key_shape`` (the latents)."""
        self.attention.build(query_shape)
        if self.cross_attention is not None:
            self.cross_attention.build(query_shape, key_shape, value_shape)
        self.ffn.build(query_shape)

    def call(self, query, key, value, cross=False, training=None):
        """(B, M, D), (B, S, D), (B, S, D) → (B, M, D)."""
        if cross and self.cross_attention is None:
            raise ValueError(
                "this module has no cross-attention (the cell never calls it "
                "as one)"
            )
        attention = self.cross_attention if cross else self.attention
        return self.ffn(
            attention(query, key, value, training=training), training=training
        )  # the same FFN

    def get_config(self):
        return {
            **super().get_config(),
            "dim": self.dim,
            "num_heads": self.num_heads,
            "has_cross": self.has_cross,
            "ffn_expansion": self.ffn_expansion,
            "attn_dropout": self.attn_dropout,
            "ffn_dropout": self.ffn_dropout,
        }


# --- the recurrent cell ------------------------------------------------------
@keras.saving.register_keras_serializable(package=PACKAGE)
class TLBCell(layers.Layer):
    """A ``keras.layers.RNN`` cell: one chunk through the fast stream, then one
    slow-stream update.

    The state is the slow stream, flattened to ``(B, L·D)`` because a Keras RNN
    state is a vector per example. Keras' RNN (torch backend) stacks one tensor
    per step, so the cell's output packs two things into one vector of
    ``K·D + h·L·K``: the chunk after the fast stream and the update's attention
    weights; :func:`split_cell_output` unpacks them.

    The fast stream is ``self_blocks`` and ``cross_blocks``
    (:class:`AttentionBlock`) in the ``"separate"`` layout,
    ``perceptual_module`` (:class:`PerceptualModule`, named after the example's
    modules) in the ``"keras-example"`` layout; ``bottleneck`` is the
    slow-stream update in both.

    Args:
        dim: width D of both streams.
        chunk_size: K, tokens per chunk (one RNN step).
        num_latents: L, the size of the slow stream (the bottleneck).
        num_layers: ℓ, fast-stream self-attention layers.
        r: a cross-attention from the fast to the slow stream after layers 0,
            r, 2r, ...
        layout: ``"separate"`` or ``"keras-example"`` (see :mod:`seqlib.tlb`).
    """

    def __init__(
        self,
        *,
        dim: int,
        chunk_size: int,
        num_latents: int,
        num_layers: int,
        r: int,
        num_heads: int,
        ffn_expansion: int = 4,
        attn_dropout: float = 0.0,
        ffn_dropout: float = 0.0,
        layout: str = "separate",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_config(1, 1, dim, 1, num_heads, r, layout)
        self.dim, self.chunk_size, self.num_latents, self.num_layers = (
            dim,
            chunk_size,
            num_latents,
            num_layers,
        )
        self.r, self.num_heads, self.ffn_expansion, self.layout = (
            r,
            num_heads,
            ffn_expansion,
            layout,
        )
        self.attn_dropout, self.ffn_dropout = attn_dropout, ffn_dropout
        block = dict(
            dim=dim,
            num_heads=num_heads,
            ffn_expansion=ffn_expansion,
            attn_dropout=attn_dropout,
            ffn_dropout=ffn_dropout,
        )
        if layout == "separate":
            self.self_blocks = [
                AttentionBlock(**block, name=f"self_{i}")
                for i in range(num_layers)
            ]
            self.cross_blocks = [
                AttentionBlock(**block, name=f"cross_{i}")
                for i in cross_layers(num_layers, r)
            ]
        else:
            self.perceptual_module = [
                PerceptualModule(**block, has_cross=j % r == 0, name=name)
                for j, name in enumerate(keras_example_modules(num_layers, r))
            ]
        self.bottleneck = AttentionBlock(**block, name="bottleneck")
        self.state_size = num_latents * dim
        self.output_size = (
            chunk_size * dim + num_heads * num_latents * chunk_size
        )

    def build(self, input_shape):
        chunk, latents = (
            (None, self.chunk_size, self.dim),
            (None, self.num_latents, self.dim),
        )
        if self.layout == "separate":
            for block in self.self_blocks:
                block.build(chunk)
            for block in self.cross_blocks:
                block.build(chunk, latents, latents)
        else:
            for module in self.perceptual_module:
                module.build(chunk, latents, latents)
        self.bottleneck.build(latents, chunk, chunk)
        # Learned, distinct start latents: from identical (e.g. zero) latents
        # every update is identical too.
        self.initial_latents = self.add_weight(
            shape=(self.num_latents, self.dim),
            name="initial_latents",
            initializer=keras.initializers.RandomNormal(stddev=0.02),
        )  # (L, D)

    def get_initial_state(self, batch_size=None):
        """The slow stream before the first chunk, flattened: (B, L·D)."""
        flat = ops.reshape(
            self.initial_latents, (1, self.state_size)
        )  # (1, L·D)
        return [
            ops.broadcast_to(flat, (batch_size, self.state_size))
        ]  # (B, L·D)

    def step(self, fast, slow, training=None):
        """The cell in readable form: (B, K, D), (B, L, D) → (B, K, D), (B, L,
        D), weights (B, h, L, K)."""
        if self.layout == "keras-example":
            fast = self.keras_example_fast_stream(
                fast, slow, training=training
            )  # (B, K, D)
        else:
            for i, block in enumerate(self.self_blocks):
                fast = block(
                    fast, fast, fast, training=training
                )  # (B, K, D): self-attention within the chunk
                if i % self.r == 0:
                    fast = self.cross_blocks[i // self.r](
                        fast, slow, slow, training=training
                    )  # read the slow stream
        slow, weights = self.bottleneck(
            slow, fast, fast, return_attention=True, training=training
        )  # (B, L, D), (B, h, L, K)
        return fast, slow, weights

    def keras_example_fast_stream(self, fast, slow, training=None):
        """The example's fast stream: every module as self-attention, every
        r-th again as cross-attention."""
        for j, module in enumerate(self.perceptual_module):
            fast = module(
                fast, fast, fast, training=training
            )  # (B, K, D): self-attention within the chunk
            if j % self.r == 0:
                fast = module(
                    fast, slow, slow, cross=True, training=training
                )  # (B, K, D): same FFN, reads slow
        return fast

    def call(self, inputs, states, training=None):
        """One RNN step: chunk (B, K, D) and state [(B, L·D)] → output (B, K·D
        + h·L·K), [(B, L·D)]."""
        slow = ops.reshape(
            states[0], (-1, self.num_latents, self.dim)
        )  # (B, L, D)
        fast, slow, weights = self.step(inputs, slow, training=training)
        output = ops.concatenate(
            [
                ops.reshape(
                    fast, (-1, self.chunk_size * self.dim)
                ),  # (B, K·D)
                ops.reshape(
                    weights,
                    (-1, self.output_size - self.chunk_size * self.dim),
                ),
            ],
            axis=-1,
        )  # (B, K·D + h·L·K)
        return output, [ops.reshape(slow, (-1, self.state_size))]  # (B, L·D)

    def get_config(self):
        return {
            **super().get_config(),
            "dim": self.dim,
            "chunk_size": self.chunk_size,
            "num_latents": self.num_latents,
            "num_layers": self.num_layers,
            "r": self.r,
            "num_heads": self.num_heads,
            "ffn_expansion": self.ffn_expansion,
            "attn_dropout": self.attn_dropout,
            "ffn_dropout": self.ffn_dropout,
            "layout": self.layout,
        }


def split_cell_output(
    outputs, *, chunk_size: int, dim: int, num_heads: int, num_latents: int
):
    """Unpack :class:`TLBCell` outputs (B, T, K·D + h·L·K) into fast (B, T, K,
    D) and weights (B, T, h, L, K)."""
    T, kd = outputs.shape[1], chunk_size * dim
    fast = ops.reshape(
        outputs[..., :kd], (-1, T, chunk_size, dim)
    )  # (B, T, K, D)
    weights = ops.reshape(
        outputs[..., kd:], (-1, T, num_heads, num_latents, chunk_size)
    )  # (B, T, h, L, K)
    return fast, weights


# --- the model ---------------------------------------------------------------
@keras.saving.register_keras_serializable(package=PACKAGE)
class TemporalLatentBottleneck(keras.Model):
    """Patch embedding, the cell inside ``keras.layers.RNN``, layer norm, mean
    over the last chunk, head.

    (B, H, W, C) → logits (B, classes). The fast stream's layout is ``layout``
    (``"separate"`` or ``"keras-example"``, see :mod:`seqlib.tlb`). The head
    returns logits (train with ``from_logits=True``); the number of classes
    is a constructor argument. The keyword arguments are the fields of
    :class:`seqlib.tlb.TLBConfig`, so
    ``TemporalLatentBottleneck(**asdict(config))``.
    """

    def __init__(
        self,
        *,
        image_size: int = 28,
        patch_size: int = 4,
        in_channels: int = 1,
        dim: int = 32,
        chunk_size: int = 7,
        num_latents: int = 7,
        num_layers: int = 2,
        r: int = 1,
        num_heads: int = 2,
        ffn_expansion: int = 4,
        attn_dropout: float = 0.0,
        ffn_dropout: float = 0.0,
        num_classes: int = 10,
        layout: str = "separate",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_config(
            image_size, patch_size, dim, chunk_size, num_heads, r, layout
        )
        self.sizes = dict(
            image_size=image_size,
            patch_size=patch_size,
            in_channels=in_channels,
            dim=dim,
            chunk_size=chunk_size,
            num_latents=num_latents,
            num_layers=num_layers,
            r=r,
            num_heads=num_heads,
            ffn_expansion=ffn_expansion,
            attn_dropout=attn_dropout,
            ffn_dropout=ffn_dropout,
            num_classes=num_classes,
            layout=layout,
        )
        self.patch_embedding = ChunkedPatchEmbedding(
            image_size=image_size,
            patch_size=patch_size,
            dim=dim,
            chunk_size=chunk_size,
            name="patch_embedding",
        )
        cell = TLBCell(
            dim=dim,
            chunk_size=chunk_size,
            num_latents=num_latents,
            num_layers=num_layers,
            r=r,
            num_heads=num_heads,
            ffn_expansion=ffn_expansion,
            attn_dropout=attn_dropout,
            ffn_dropout=ffn_dropout,
            layout=layout,
            name="cell",
        )
        self.rnn = layers.RNN(
            cell, return_sequences=True, name="rnn"
        )  # carries the slow stream
        self.norm = _layer_norm("norm")
        self.head = layers.Dense(num_classes, name="head")

    @classmethod
    def from_tlb_config(
        cls, config: TLBConfig, **kwargs
    ) -> "TemporalLatentBottleneck":
        """Build from the dataclass shared with the PyTorch twin."""
        return cls(
            **{f: getattr(config, f) for f in config.__dataclass_fields__},
            **kwargs,
        )

    @property
    def cell(self) -> TLBCell:
        """The recurrent cell inside ``self.rnn``."""
        return self.rnn.cell

    def build(self, input_shape):
        s = self.sizes
        self.patch_embedding.build(input_shape)
        self.rnn.build(
            (
                None,
                (s["image_size"] // s["patch_size"]) ** 2 // s["chunk_size"],
                s["chunk_size"],
                s["dim"],
            )
        )
        self.norm.build((None, s["dim"]))
        self.head.build((None, s["dim"]))

    def call(self, images, training=None, return_attention=False):
        """(B, H, W, C) → logits (B, classes) [, slow-stream weights (B, T, h,
        L, K)]."""
        s = self.sizes
        expect_shape(
            images,
            ("B", s["image_size"], s["image_size"], s["in_channels"]),
            name="images (B, H, W, C)",
        )
        chunks = self.patch_embedding(images)  # (B, T, K, D)
        outputs = self.rnn(chunks, training=training)  # (B, T, K·D + h·L·K)
        fast, weights = split_cell_output(
            outputs,
            chunk_size=s["chunk_size"],
            dim=s["dim"],
            num_heads=s["num_heads"],
            num_latents=s["num_latents"],
        )
        logits = self.head(
            ops.mean(self.norm(fast[:, -1]), axis=1)
        )  # (B, classes): pool the last chunk
        return (logits, weights) if return_attention else logits

    def attention_maps(self, images):
        """Slow-stream attention weights in inference mode: (B, T, h, L, K)."""
        return self(images, training=False, return_attention=True)[1]

    def get_config(self):
        return {**super().get_config(), **self.sizes}


def slow_stream_heatmap(weights, grid: int):
    """Per patch, the largest weight any latent gave it, averaged over heads:
    (B, T, h, L, K) → (B, grid, grid)."""
    expect_shape(weights, ("B", "T", "h", "L", "K"), name="weights")
    per_token = ops.mean(ops.max(weights, axis=3), axis=2)  # (B, T, K)
    return ops.reshape(
        per_token, (-1, grid, grid)
    )  # (B, gh, gw): chunks are consecutive runs of the row-major grid


def upsample_heatmap(heatmap, size: int):
    """Bilinear upsampling of (B, gh, gw) patch maps to the image size: (B,
    size, size)."""
    return ops.image.resize(
        heatmap[..., None], (size, size), interpolation="bilinear"
    )[..., 0]  # (B, H, W)
