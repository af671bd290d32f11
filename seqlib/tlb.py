"""Temporal Latent Bottleneck in PyTorch: the twin of :mod:`seqlib.tlb_keras`.

Didolkar et al. (2022), "Temporal Latent Bottleneck: Synthesis of Fast and Slow
Processing Mechanisms in Sequence Learning". Image patches are embedded and cut
into T chunks of K tokens. A *fast stream* (a small Transformer) reads one
chunk at a time, with self-attention inside the chunk and cross-attention from
the chunk to the *slow stream*; the slow stream is L latent vectors, updated
once per chunk by one cross-attention from the latents to what the fast stream
produced, and carried from chunk to chunk like the state of an RNN. Every
attention reads layer-normed queries, keys and values and adds its result to
the (un-normed) query; every attention is followed by a residual FFN. So every
layer of either stream is chapter 5's :class:`seqlib.layers.Block`, called as
``block(query, key=..., value=...)`` with a :class:`NormedKVAttention` mixer;
the layers differ only in which tokens meet: the chunk with itself
(self-attention within a chunk), the chunk against the latents, or the latents
against the chunk.

Two layouts of the fast stream (``TLBConfig.layout``), for ``num_layers`` = ℓ
and a cross-attention every r layers:

``"separate"`` (the default, the one chapter 11 trains)
    ℓ self-attention blocks; after blocks 0, r, 2r, ... (counting from 0) one
    cross-attention block, ⌈ℓ/r⌉ in all. Every block has its own attention and
    its own FFN. ℓ = 4, r = 2: self 0, cross 0, self 1, self 2, cross 2, self 3
    (4 self-attention and 2 cross-attention sub-layers per chunk, 6 FFNs).
``"keras-example"``
    the sub-layer order and FFN sharing of the Keras example "When Recurrence
    meets Transformers" (Gosthipaty and Mukherjee, keras.io, Keras 3 version).
    Its list of fast-stream modules is the list above (ℓ + ⌈ℓ/r⌉ modules), but
    the cell runs *every* module of the list as self-attention, and the modules
    at list positions 0, r, 2r, ... a second time, right after, as
    cross-attention to the slow stream; a module's two calls have separate
    attention weights and share the module's one FFN. ℓ = 4, r = 2: 6
    self-attention and 3 cross-attention sub-layers per chunk, 6 FFNs, 3
    attention sub-layers more than ``"separate"``.

Other differences from the Keras example remain in both layouts: there the slow
stream has L = K latents that start from zeros (the Keras RNN default; here L
is free and the start latents are learned and distinct), its head pools the
last chunk without a final layer norm (here a layer norm comes first), its FFN
drops out after the output projection (here after the GELU), its attention
heads have width D whatever h (here D/h; the same for its h = 1), and it trains
in mixed precision.

The modules and their weights mirror the Keras version one-to-one, so
:func:`seqlib.tlb_parity.copy_keras_weights` can load a trained Keras model
here and a test can check that both give the same logits. The slow-stream
update's attention weights come from :func:`seqlib.attention.record` (stacked
by
:func:`slow_stream_maps`); ``forward`` returns logits only. Images are
``(B, C, H, W)`` as everywhere in seqlib (Keras takes ``(B, H, W, C)``). Shape
letters: B batch, C channels, H/W image size, P patch side, N patches, K tokens
per chunk, T = N/K chunks, L latents, D width, h heads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from seqlib.attention import AttentionMaps, MultiHeadAttention
from seqlib.layers import Block, ConvPatchEmbedding, FeedForward
from seqlib.positional import LearnedPositionalEncoding
from seqlib.profiles import Sizes
from seqlib.shapes import expect_shape


@dataclass(frozen=True)
class TLBConfig:
    """Sizes of a Temporal Latent Bottleneck classifier (the same fields in
    both frameworks)."""

    image_size: int = 28
    patch_size: int = 4
    in_channels: int = 1
    dim: int = 32
    chunk_size: int = 7
    num_latents: int = 7
    num_layers: int = 2
    r: int = 1
    num_heads: int = 2
    ffn_expansion: int = 4
    attn_dropout: float = 0.0
    ffn_dropout: float = 0.0
    num_classes: int = 10
    layout: str = "separate"

    def __post_init__(self) -> None:
        check_config(
            self.image_size,
            self.patch_size,
            self.dim,
            self.chunk_size,
            self.num_heads,
            self.r,
            self.layout,
        )

    @classmethod
    def from_sizes(cls, sizes: Sizes, **overrides) -> "TLBConfig":
        """The config from a chapter's sizes (``profiles.sizes("ch11")``): the
        fields both have, then ``overrides``."""
        return cls(
            **{
                **{
                    k: v
                    for k, v in sizes.as_dict().items()
                    if k in cls.__dataclass_fields__
                },
                **overrides,
            }
        )

    @property
    def num_patches(self) -> int:
        """N = (H/P)²."""
        return (self.image_size // self.patch_size) ** 2

    @property
    def num_chunks(self) -> int:
        """T = N/K, the number of recurrent steps."""
        return self.num_patches // self.chunk_size


LAYOUTS = ("separate", "keras-example")
"""The fast-stream layouts (see the module docstring and
:func:`fast_stream_calls`)."""


def check_config(
    image_size: int,
    patch_size: int,
    dim: int,
    chunk_size: int,
    num_heads: int,
    r: int,
    layout: str = "separate",
) -> None:
    """Raise ``ValueError`` for sizes that do not fit together (shared with the
    Keras version)."""
    if patch_size < 1 or image_size % patch_size:
        raise ValueError(
            f"image_size={image_size} must be a multiple of "
            f"patch_size={patch_size}"
        )
    n = (image_size // patch_size) ** 2
    if chunk_size < 1 or n % chunk_size:
        raise ValueError(
            f"chunk_size={chunk_size} must divide the number of patches N={n}"
        )
    if num_heads < 1 or dim % num_heads:
        raise ValueError(f"num_heads={num_heads} must divide dim={dim}")
    if r < 1:
        raise ValueError(
            f"r (one cross-attention every r layers) must be >= 1, got {r}"
        )
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def tlb_tiny(**overrides) -> "TemporalLatentBottleneck":
    """Fashion-MNIST size: 28×28×1, 4×4 patches (N = 49), chunks of 7 (one
    patch row), D = 32."""
    return TemporalLatentBottleneck(TLBConfig(**overrides))


# --- blocks ------------------------------------------------------------------
class ChunkedPatchEmbedding(nn.Module):
    """Patches → N tokens (chapter 6's strided convolution), + learned
    positions, layer norm, T chunks of K."""

    def __init__(
        self,
        *,
        image_size: int,
        patch_size: int,
        in_channels: int,
        dim: int,
        chunk_size: int,
    ):
        super().__init__()
        self.chunk_size = chunk_size
        self.patches = ConvPatchEmbedding(
            image_size=image_size,
            patch_size=patch_size,
            in_channels=in_channels,
            dim=dim,
        )
        self.position_embedding = LearnedPositionalEncoding(
            self.patches.num_patches, dim
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → chunks (B, T, K, D)."""
        x = self.norm(
            self.position_embedding(self.patches(images))
        )  # (B, N, D)
        return rearrange(
            x, "b (t k) d -> b t k d", k=self.chunk_size
        )  # (B, T, K, D)


class NormedKVAttention(MultiHeadAttention):
    """The TLB mixer: ``MHA(q, LN_k(key), LN_v(value))``, keys and values
    layer-normed here.

    In a :class:`~seqlib.layers.Block` the query is the block's layer-normed
    input, so the sub-layer is
    ``query + MHA(LN_q(query), LN_k(key), LN_v(value))``: each input gets its
    own layer norm. That matters in cross-attention, where keys and values come
    from the other stream, whose scale need not match the queries'.
    """

    def __init__(
        self, dim: int, heads: int, *, dropout: float = 0.0, fast: bool = True
    ):
        super().__init__(dim, heads, dropout=dropout, fast=fast)
        self.key_norm, self.value_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(
        self,
        query: torch.Tensor,
        *,
        key: torch.Tensor,  # type: ignore[override]
        value: torch.Tensor,
    ) -> torch.Tensor:
        """(B, M, D) normed queries attend to (B, S, D) keys/values → (B, M,
        D)."""
        return super().forward(
            query, self.key_norm(key), self.value_norm(value)
        )


def attention_block(
    dim: int,
    *,
    num_heads: int,
    ffn_expansion: int = 4,
    attn_dropout: float = 0.0,
    ffn_dropout: float = 0.0,
    fast: bool = True,
) -> Block:
    """``FFN(query + MHA(LN(query), LN(key), LN(value)))``: a
    :class:`~seqlib.layers.Block` with a
    :class:`NormedKVAttention` mixer and a GELU FFN of width
    ``ffn_expansion·D``; call it as ``block(query, key=..., value=...)``, (B,
    M, D), (B, S, D), (B, S, D) → (B, M, D).

    A fast-stream sub-layer of the ``"separate"`` layout (self-attention with
    key = value = the chunk, or cross-attention with keys and values from the
    slow stream), and in both layouts the slow-stream update (queries = the
    latents).
    """
    return Block(
        dim,
        NormedKVAttention(dim, num_heads, dropout=attn_dropout, fast=fast),
        FeedForward(
            dim, ffn_expansion * dim, dropout=ffn_dropout, activation="gelu"
        ),
    )


# --- the recurrent cell ------------------------------------------------------
def cross_layers(num_layers: int, r: int) -> list[int]:
    """Indices of the fast-stream layers followed by a cross-attention to the
    slow stream: 0, r, 2r, ..."""
    return [i for i in range(num_layers) if i % r == 0]


def keras_example_modules(num_layers: int, r: int) -> list[str]:
    """Names of the Keras example's fast-stream modules, in list order: a self
    module per layer, a cross module after layers 0, r, 2r, ...; ℓ = 4, r = 2 →
    self_0, cross_0, self_1, self_2, cross_2, self_3."""
    names = []
    for i in range(num_layers):
        names.append(f"self_{i}")
        if i in cross_layers(num_layers, r):
            names.append(f"cross_{i}")
    return names


def fast_stream_calls(
    num_layers: int, r: int, layout: str = "separate"
) -> list[tuple[str, str]]:
    """The sub-layers one chunk passes through, in order: ``(kind, module)``,
    kind "self" or "cross".

    ``"separate"``: each module once, self modules as self-attention, cross
    modules as cross-attention. ``"keras-example"``: every module of
    :func:`keras_example_modules` as self-attention, and the one at list
    position j again as cross-attention when j % r == 0. Each sub-layer ends
    with its module's FFN.
    """
    check_config(1, 1, 1, 1, 1, r, layout)
    modules = keras_example_modules(num_layers, r)
    if layout == "separate":
        return [(name.split("_")[0], name) for name in modules]
    calls = []
    for j, name in enumerate(modules):
        calls.append(("self", name))
        if j % r == 0:
            calls.append(("cross", name))
    return calls


class PerceptualModule(nn.Module):
    """One module of the Keras example's fast-stream list
    (``layout="keras-example"``).

    Two :func:`attention_block` that share one FFN (and its layer norm):
    ``self_block`` (self-attention) and, when the cell ever calls the module as
    cross-attention (``has_cross``), ``cross_block`` (cross-attention to the
    slow stream). ``module(query, key=, value=, cross=)`` runs one of them;
    either way the result goes through the module's one FFN. Queries (B, M, D),
    keys and values (B, S, D) → (B, M, D).
    """

    def __init__(
        self,
        dim: int,
        *,
        has_cross: bool,
        num_heads: int,
        ffn_expansion: int = 4,
        attn_dropout: float = 0.0,
        ffn_dropout: float = 0.0,
    ):
        super().__init__()
        self_mixer = NormedKVAttention(dim, num_heads, dropout=attn_dropout)
        cross_mixer = (
            NormedKVAttention(dim, num_heads, dropout=attn_dropout)
            if has_cross
            else None
        )
        ffn = FeedForward(
            dim, ffn_expansion * dim, dropout=ffn_dropout, activation="gelu"
        )
        self.self_block = Block(dim, self_mixer, ffn)
        self.cross_block = Block(dim, cross_mixer, ffn) if has_cross else None
        if self.cross_block is not None:
            self.cross_block.norms[1] = self.self_block.norms[
                1
            ]  # the one FFN's one layer norm

    @property
    def ffn(self) -> FeedForward:
        """The FFN both blocks end with."""
        return self.self_block.mlp

    def forward(
        self,
        query: torch.Tensor,
        *,
        key: torch.Tensor,
        value: torch.Tensor,
        cross: bool = False,
    ) -> torch.Tensor:
        """(B, M, D), (B, S, D), (B, S, D) → (B, M, D)."""
        if cross and self.cross_block is None:
            raise ValueError(
                "this module has no cross-attention (the cell never calls it "
                "as one)"
            )
        return (self.cross_block if cross else self.self_block)(
            query, key=key, value=value
        )


class TLBCell(nn.Module):
    """One step of the recurrence: a chunk through the fast stream, then one
    slow-stream update.

    The fast stream is laid out as ``layout`` says (see the module docstring
    and
    :func:`fast_stream_calls`): ``"separate"`` builds ``self_blocks`` (ℓ) and
    ``cross_blocks`` (⌈ℓ/r⌉) of :func:`attention_block`, each with its own FFN;
    ``"keras-example"`` builds ``perceptual_module``, the example's list of
    ℓ + ⌈ℓ/r⌉ :class:`PerceptualModule`. In both, ``bottleneck`` is the
    slow-stream update, an :func:`attention_block` whose queries are the
    latents; it always forms its weights explicitly (``fast=False``), as the
    cell always did, so its recorded weights (B, h, L, K) say how much each
    latent read from each token of the chunk.

    Args:
        dim: width D of both streams.
        num_latents: L, the size of the slow stream (the bottleneck).
        num_layers: ℓ, fast-stream self-attention layers.
        r: a cross-attention from the fast to the slow stream after layers 0,
            r, 2r, ...
        layout: ``"separate"`` or ``"keras-example"``.
    """

    def __init__(
        self,
        *,
        dim: int,
        num_latents: int,
        num_layers: int,
        r: int,
        num_heads: int,
        ffn_expansion: int = 4,
        attn_dropout: float = 0.0,
        ffn_dropout: float = 0.0,
        layout: str = "separate",
    ):
        super().__init__()
        check_config(1, 1, dim, 1, num_heads, r, layout)
        block = dict(
            num_heads=num_heads,
            ffn_expansion=ffn_expansion,
            attn_dropout=attn_dropout,
            ffn_dropout=ffn_dropout,
        )
        self.r, self.layout = r, layout
        if layout == "separate":
            self.self_blocks = nn.ModuleList(
                attention_block(dim, **block) for _ in range(num_layers)
            )
            self.cross_blocks = nn.ModuleList(
                attention_block(dim, **block)
                for _ in cross_layers(num_layers, r)
            )
        else:
            self.perceptual_module = nn.ModuleList(
                PerceptualModule(dim, has_cross=j % r == 0, **block)
                for j in range(len(keras_example_modules(num_layers, r)))
            )
        self.bottleneck = attention_block(dim, **block, fast=False)
        # Learned, distinct start latents: from identical (e.g. zero) latents
        # every update is identical too.
        self.initial_latents = nn.Parameter(
            torch.randn(num_latents, dim) * 0.02
        )  # (L, D)

    def initial_state(self, batch_size: int) -> torch.Tensor:
        """The slow stream before the first chunk: (B, L, D)."""
        return self.initial_latents.expand(batch_size, -1, -1)  # (B, L, D)

    def fast_stream(
        self, fast: torch.Tensor, slow: torch.Tensor
    ) -> torch.Tensor:
        """The chunk (B, K, D) through the fast stream, reading the slow stream
        (B, L, D) → (B, K, D)."""
        if self.layout == "keras-example":
            for j, module in enumerate(self.perceptual_module):
                fast = module(
                    fast, key=fast, value=fast
                )  # (B, K, D): every module as self-attention
                if j % self.r == 0:
                    fast = module(
                        fast, key=slow, value=slow, cross=True
                    )  # (B, K, D): again, reading the slow stream
            return fast
        for i, block in enumerate(self.self_blocks):
            fast = block(
                fast, key=fast, value=fast
            )  # (B, K, D): self-attention within the chunk
            if i % self.r == 0:
                fast = self.cross_blocks[i // self.r](
                    fast, key=slow, value=slow
                )  # (B, K, D): read the slow stream
        return fast

    def forward(
        self, fast: torch.Tensor, slow: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Process one chunk: (B, K, D) tokens and the slow stream so far (B,
        L, D) → both updated.

        Returns the chunk after the fast stream (B, K, D) and the updated slow
        stream (B, L, D).
        """
        fast = self.fast_stream(fast, slow)  # (B, K, D)
        return fast, self.bottleneck(
            slow, key=fast, value=fast
        )  # (B, K, D), (B, L, D)


# --- the model ---------------------------------------------------------------
class TemporalLatentBottleneck(nn.Module):
    """A TLB image classifier: (B, C, H, W) → logits (B, classes).

    Patch embedding into T chunks of K tokens; :class:`TLBCell` run over the
    chunks in order, carrying the slow stream (B, L, D); then a layer norm on
    the last chunk's fast stream (B, K, D), its mean over the K tokens, and a
    linear head. The fast stream's layout is ``config.layout``. The slow-stream
    update's weights are recorded as ``"cell.bottleneck.mixers.attn"``, once
    per chunk (:func:`slow_stream_maps` stacks them).
    """

    def __init__(self, config: TLBConfig):
        super().__init__()
        self.config = c = config
        self.patch_embedding = ChunkedPatchEmbedding(
            image_size=c.image_size,
            patch_size=c.patch_size,
            in_channels=c.in_channels,
            dim=c.dim,
            chunk_size=c.chunk_size,
        )
        self.cell = TLBCell(
            dim=c.dim,
            num_latents=c.num_latents,
            num_layers=c.num_layers,
            r=c.r,
            num_heads=c.num_heads,
            ffn_expansion=c.ffn_expansion,
            attn_dropout=c.attn_dropout,
            ffn_dropout=c.ffn_dropout,
            layout=c.layout,
        )
        self.norm = nn.LayerNorm(c.dim)
        self.head = nn.Linear(c.dim, c.num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → logits (B, classes)."""
        c = self.config
        expect_shape(
            images,
            ("B", c.in_channels, c.image_size, c.image_size),
            name="images",
        )
        chunks = self.patch_embedding(images)  # (B, T, K, D)
        slow = self.cell.initial_state(chunks.shape[0])  # (B, L, D)
        for t in range(chunks.shape[1]):  # the recurrence: one chunk per step
            fast, slow = self.cell(chunks[:, t], slow)  # (B, K, D), (B, L, D)
        return self.head(
            self.norm(fast).mean(dim=1)
        )  # (B, classes): pool the last chunk


def slow_stream_maps(maps: AttentionMaps) -> torch.Tensor:
    """The slow-stream update's weights from :func:`seqlib.attention.record`,
    stacked over the chunks.

    Record one forward pass of a :class:`TemporalLatentBottleneck` (or the
    cell's steps over one sequence)::

        with attention.record(model) as maps:
            logits = model(images)
        weights = tlb.slow_stream_maps(maps)  # (B, T, h, L, K)

    Returns:
        (B, T, h, L, K): how much each latent read from each token of each
        chunk.
    """
    return torch.stack(
        maps.select("*bottleneck.mixers.attn"), dim=1
    )  # (B, T, h, L, K)


def slow_stream_heatmap(weights: torch.Tensor, grid: int) -> torch.Tensor:
    """Per patch, the largest weight any latent gave it, averaged over heads,
    laid out on the patch grid.

    Args:
        weights: (B, T, h, L, K) from :func:`slow_stream_maps`.
        grid: patches per side, H/P (T·K = grid²).

    Returns:
        (B, grid, grid); within a chunk the weights of each latent sum to 1.
    """
    expect_shape(weights, ("B", "T", "h", "L", "K"), name="weights")
    per_token = weights.amax(dim=3).mean(dim=2)  # (B, T, K)
    return rearrange(per_token, "b t k -> b (t k)").reshape(
        -1, grid, grid
    )  # (B, gh, gw)
