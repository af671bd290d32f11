"""Temporal Latent Bottleneck in PyTorch: the twin of :mod:`seqlib.tlb_keras`.

Didolkar et al. (2022), "Temporal Latent Bottleneck: Synthesis of Fast and Slow
Processing Mechanisms in Sequence Learning". Image patches are embedded and cut
into T chunks of K tokens. A *fast stream* (a small Transformer) reads one chunk
at a time, with self-attention inside the chunk and cross-attention from the
chunk to the *slow stream*; the slow stream is L latent vectors, updated once per
chunk by one cross-attention from the latents to what the fast stream produced,
and carried from chunk to chunk like the state of an RNN. Every attention reads
layer-normed queries, keys and values and adds its result to the (un-normed)
query; every attention is followed by a residual FFN.

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
stream has L = K latents that start from zeros (the Keras RNN default; here L is
free and the start latents are learned and distinct), its head pools the last
chunk without a final layer norm (here a layer norm comes first), its FFN drops
out after the output projection (here after the GELU), its attention heads have
width D whatever h (here D/h; the same for its h = 1), and it trains in mixed
precision.

The modules, their names and their weights mirror the Keras version one-to-one,
so :func:`copy_keras_weights` can load a trained Keras model here and a test can
check that both give the same logits. Images are ``(B, C, H, W)`` as everywhere
in seqlib (Keras takes ``(B, H, W, C)``). Shape letters: B batch, C channels,
H/W image size, P patch side, N patches, K tokens per chunk, T = N/K chunks,
L latents, D width, h heads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from seqlib.attention import MultiHeadAttention
from seqlib.positional import LearnedPositionalEncoding
from seqlib.shapes import expect_shape
from seqlib.transformer import FeedForward
from seqlib.vit import PatchEmbedding as ViTPatchEmbedding


@dataclass(frozen=True)
class TLBConfig:
    """Sizes of a Temporal Latent Bottleneck classifier (the same fields in both frameworks)."""

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
        check_config(self.image_size, self.patch_size, self.dim, self.chunk_size, self.num_heads, self.r,
                     self.layout)

    @property
    def num_patches(self) -> int:
        """N = (H/P)²."""
        return (self.image_size // self.patch_size) ** 2

    @property
    def num_chunks(self) -> int:
        """T = N/K, the number of recurrent steps."""
        return self.num_patches // self.chunk_size


LAYOUTS = ("separate", "keras-example")
"""The fast-stream layouts (see the module docstring and :func:`fast_stream_calls`)."""


def check_config(image_size: int, patch_size: int, dim: int, chunk_size: int, num_heads: int, r: int,
                 layout: str = "separate") -> None:
    """Raise ``ValueError`` for sizes that do not fit together (shared with the Keras version)."""
    if patch_size < 1 or image_size % patch_size:
        raise ValueError(f"image_size={image_size} must be a multiple of patch_size={patch_size}")
    n = (image_size // patch_size) ** 2
    if chunk_size < 1 or n % chunk_size:
        raise ValueError(f"chunk_size={chunk_size} must divide the number of patches N={n}")
    if num_heads < 1 or dim % num_heads:
        raise ValueError(f"num_heads={num_heads} must divide dim={dim}")
    if r < 1:
        raise ValueError(f"r (one cross-attention every r layers) must be >= 1, got {r}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def tlb_tiny(**overrides) -> "TemporalLatentBottleneck":
    """Fashion-MNIST size: 28×28×1, 4×4 patches (N = 49), chunks of 7 (one patch row), D = 32."""
    return TemporalLatentBottleneck(TLBConfig(**overrides))


CIFAR_CONFIG = dict(image_size=48, patch_size=4, in_channels=3, dim=64, chunk_size=8, num_latents=8,
                    num_layers=4, r=2, num_heads=1, ffn_expansion=4, attn_dropout=0.2, ffn_dropout=0.2,
                    num_classes=10)
"""The sizes of the Keras example's CIFAR-10 model: 48×48 crops, N = 144 patches, 18 chunks of 8, D = 64,
ℓ = 4, r = 2 (the example has L = K = 8 latents too). The layout stays the default ``"separate"`` unless
``layout="keras-example"`` is added."""


def tlb_cifar(**overrides) -> "TemporalLatentBottleneck":
    """A TLB with the Keras example's CIFAR-10 sizes (about 0.36 M parameters with the default layout).

    With ``layout="keras-example"`` the fast stream has the example's sub-layer order and FFN sharing
    (about 0.41 M parameters); the other differences listed in the module docstring remain.
    """
    return TemporalLatentBottleneck(TLBConfig(**{**CIFAR_CONFIG, **overrides}))


# --- blocks -------------------------------------------------------------------------------------
class PatchEmbedding(nn.Module):
    """Patches → N tokens (a strided convolution), + learned positions, layer norm, cut into T chunks of K."""

    def __init__(self, *, image_size: int, patch_size: int, in_channels: int, dim: int, chunk_size: int):
        super().__init__()
        self.chunk_size = chunk_size
        self.patches = ViTPatchEmbedding(image_size=image_size, patch_size=patch_size,
                                         in_channels=in_channels, dim=dim)  # chapter 6's E
        self.position_embedding = LearnedPositionalEncoding(self.patches.num_patches, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → chunks (B, T, K, D)."""
        x = self.norm(self.position_embedding(self.patches(images)))  # (B, N, D)
        return rearrange(x, "b (t k) d -> b t k d", k=self.chunk_size)  # (B, T, K, D)


class FeedForwardBlock(nn.Module):
    """``x + W_2 drop(GELU(W_1 LN(x)))``, ``W_1`` of width ``expansion·D`` (chapter 5's :class:`FeedForward`)."""

    def __init__(self, dim: int, *, expansion: int = 4, dropout: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, expansion * dim, dropout=dropout, activation="gelu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) → (B, N, D)."""
        return x + self.ffn(self.norm(x))


class NormedAttention(nn.Module):
    """``query + MHA(LN_q(query), LN_k(key), LN_v(value))``: each input gets its own layer norm.

    Normalising keys and values separately matters in cross-attention, where they
    come from the other stream, whose scale need not match the queries'.
    """

    def __init__(self, dim: int, *, num_heads: int, dropout: float = 0.0):
        super().__init__()
        self.query_norm, self.key_norm, self.value_norm = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = MultiHeadAttention(dim, num_heads, dropout=dropout)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *,
                return_attention: bool = False):
        """(B, M, D) queries attend to (B, S, D) keys/values → (B, M, D) [, weights (B, h, M, S)]."""
        out = self.attention(self.query_norm(query), self.key_norm(key), self.value_norm(value),
                             return_attention=return_attention)
        out, weights = out if return_attention else (out, None)
        return (query + out, weights) if return_attention else query + out


class AttentionBlock(nn.Module):
    """:class:`NormedAttention` then :class:`FeedForwardBlock`, ``FFN(Att(query, key, value))``.

    A fast-stream sub-layer of the ``"separate"`` layout (self-attention with
    query = key = value = the chunk, or cross-attention with keys and values from
    the slow stream), and in both layouts the slow-stream update (queries = the
    latents, keys and values = the chunk).
    """

    def __init__(self, dim: int, *, num_heads: int, ffn_expansion: int = 4, attn_dropout: float = 0.0,
                 ffn_dropout: float = 0.0):
        super().__init__()
        self.attention = NormedAttention(dim, num_heads=num_heads, dropout=attn_dropout)
        self.ffn = FeedForwardBlock(dim, expansion=ffn_expansion, dropout=ffn_dropout)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *,
                return_attention: bool = False):
        """(B, M, D), (B, S, D), (B, S, D) → (B, M, D) [, (B, h, M, S)]."""
        out = self.attention(query, key, value, return_attention=return_attention)
        x, weights = out if return_attention else (out, None)
        x = self.ffn(x)  # (B, M, D)
        return (x, weights) if return_attention else x


# --- the recurrent cell -------------------------------------------------------------------------
def cross_layers(num_layers: int, r: int) -> list[int]:
    """Indices of the fast-stream layers followed by a cross-attention to the slow stream: 0, r, 2r, ..."""
    return [i for i in range(num_layers) if i % r == 0]


def keras_example_modules(num_layers: int, r: int) -> list[str]:
    """Names of the Keras example's fast-stream modules, in list order: a self module per layer, a cross
    module after layers 0, r, 2r, ...; ℓ = 4, r = 2 → self_0, cross_0, self_1, self_2, cross_2, self_3."""
    names = []
    for i in range(num_layers):
        names.append(f"self_{i}")
        if i in cross_layers(num_layers, r):
            names.append(f"cross_{i}")
    return names


def fast_stream_calls(num_layers: int, r: int, layout: str = "separate") -> list[tuple[str, str]]:
    """The sub-layers one chunk passes through, in order: ``(kind, module)``, kind "self" or "cross".

    ``"separate"``: each module once, self modules as self-attention, cross modules as cross-attention.
    ``"keras-example"``: every module of :func:`keras_example_modules` as self-attention, and the one at
    list position j again as cross-attention when j % r == 0. Each sub-layer ends with its module's FFN.
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
    """One module of the Keras example's fast-stream list (``layout="keras-example"``).

    ``FFN(query + MHA(LN(query), LN(key), LN(value)))`` with the module's self-attention, or with its
    cross-attention when ``cross=True``; both calls go through the module's one :class:`FeedForwardBlock`.
    ``has_cross`` says whether the cell ever calls the module as cross-attention (only then does it have
    cross-attention weights). Queries (B, M, D), keys and values (B, S, D) → (B, M, D).
    """

    def __init__(self, dim: int, *, has_cross: bool, num_heads: int, ffn_expansion: int = 4,
                 attn_dropout: float = 0.0, ffn_dropout: float = 0.0):
        super().__init__()
        self.attention = NormedAttention(dim, num_heads=num_heads, dropout=attn_dropout)
        self.cross_attention = NormedAttention(dim, num_heads=num_heads, dropout=attn_dropout) if has_cross \
            else None
        self.ffn = FeedForwardBlock(dim, expansion=ffn_expansion, dropout=ffn_dropout)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *,
                cross: bool = False) -> torch.Tensor:
        """(B, M, D), (B, S, D), (B, S, D) → (B, M, D)."""
        if cross and self.cross_attention is None:
            raise ValueError("this module has no cross-attention (the cell never calls it as one)")
        attention = self.cross_attention if cross else self.attention
        return self.ffn(attention(query, key, value))  # (B, M, D): the same FFN after either attention


class TLBCell(nn.Module):
    """One step of the recurrence: a chunk through the fast stream, then one slow-stream update.

    The fast stream is laid out as ``layout`` says (see the module docstring and
    :func:`fast_stream_calls`): ``"separate"`` builds ``self_blocks`` (ℓ) and
    ``cross_blocks`` (⌈ℓ/r⌉) of :class:`AttentionBlock`, each with its own FFN;
    ``"keras-example"`` builds ``perceptual_module``, the example's list of
    ℓ + ⌈ℓ/r⌉ :class:`PerceptualModule`. In both, ``bottleneck`` is the
    slow-stream update, an :class:`AttentionBlock` whose queries are the latents.

    Args:
        dim: width D of both streams.
        num_latents: L, the size of the slow stream (the bottleneck).
        num_layers: ℓ, fast-stream self-attention layers.
        r: a cross-attention from the fast to the slow stream after layers 0, r, 2r, ...
        layout: ``"separate"`` or ``"keras-example"``.
    """

    def __init__(self, *, dim: int, num_latents: int, num_layers: int, r: int, num_heads: int,
                 ffn_expansion: int = 4, attn_dropout: float = 0.0, ffn_dropout: float = 0.0,
                 layout: str = "separate"):
        super().__init__()
        check_config(1, 1, dim, 1, num_heads, r, layout)
        block = dict(num_heads=num_heads, ffn_expansion=ffn_expansion, attn_dropout=attn_dropout,
                     ffn_dropout=ffn_dropout)
        self.r, self.layout = r, layout
        if layout == "separate":
            self.self_blocks = nn.ModuleList(AttentionBlock(dim, **block) for _ in range(num_layers))
            self.cross_blocks = nn.ModuleList(AttentionBlock(dim, **block) for _ in cross_layers(num_layers, r))
        else:
            self.perceptual_module = nn.ModuleList(
                PerceptualModule(dim, has_cross=j % r == 0, **block)
                for j in range(len(keras_example_modules(num_layers, r))))
        self.bottleneck = AttentionBlock(dim, **block)
        # Learned, distinct start latents: from identical (e.g. zero) latents every update is identical too.
        self.initial_latents = nn.Parameter(torch.randn(num_latents, dim) * 0.02)  # (L, D)

    def initial_state(self, batch_size: int) -> torch.Tensor:
        """The slow stream before the first chunk: (B, L, D)."""
        return self.initial_latents.expand(batch_size, -1, -1)  # (B, L, D)

    def fast_stream(self, fast: torch.Tensor, slow: torch.Tensor) -> torch.Tensor:
        """The chunk (B, K, D) through the fast stream, reading the slow stream (B, L, D) → (B, K, D)."""
        if self.layout == "keras-example":
            for j, module in enumerate(self.perceptual_module):
                fast = module(fast, fast, fast)  # (B, K, D): every module as self-attention
                if j % self.r == 0:
                    fast = module(fast, slow, slow, cross=True)  # (B, K, D): again, reading the slow stream
            return fast
        for i, block in enumerate(self.self_blocks):
            fast = block(fast, fast, fast)  # (B, K, D): self-attention within the chunk
            if i % self.r == 0:
                fast = self.cross_blocks[i // self.r](fast, slow, slow)  # (B, K, D): read the slow stream
        return fast

    def forward(self, fast: torch.Tensor, slow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Process one chunk.

        Args:
            fast: (B, K, D) the chunk's tokens.
            slow: (B, L, D) the slow stream so far.

        Returns:
            the chunk after the fast stream (B, K, D), the updated slow stream
            (B, L, D), and the update's attention weights (B, h, L, K): how much
            each latent read from each token of the chunk.
        """
        fast = self.fast_stream(fast, slow)  # (B, K, D)
        slow, weights = self.bottleneck(slow, fast, fast, return_attention=True)  # (B, L, D), (B, h, L, K)
        return fast, slow, weights


# --- the model ----------------------------------------------------------------------------------
class TemporalLatentBottleneck(nn.Module):
    """A TLB image classifier: (B, C, H, W) → logits (B, classes).

    Patch embedding into T chunks of K tokens; :class:`TLBCell` run over the chunks
    in order, carrying the slow stream (B, L, D); then a layer norm on the last
    chunk's fast stream (B, K, D), its mean over the K tokens, and a linear head.
    The fast stream's layout is ``config.layout``.
    """

    def __init__(self, config: TLBConfig):
        super().__init__()
        self.config = c = config
        self.patch_embedding = PatchEmbedding(image_size=c.image_size, patch_size=c.patch_size,
                                              in_channels=c.in_channels, dim=c.dim, chunk_size=c.chunk_size)
        self.cell = TLBCell(dim=c.dim, num_latents=c.num_latents, num_layers=c.num_layers, r=c.r,
                            num_heads=c.num_heads, ffn_expansion=c.ffn_expansion, attn_dropout=c.attn_dropout,
                            ffn_dropout=c.ffn_dropout, layout=c.layout)
        self.norm = nn.LayerNorm(c.dim)
        self.head = nn.Linear(c.dim, c.num_classes)

    def forward(self, images: torch.Tensor, *, return_attention: bool = False):
        """(B, C, H, W) → logits (B, classes) [, slow-stream weights (B, T, h, L, K)]."""
        c = self.config
        expect_shape(images, ("B", c.in_channels, c.image_size, c.image_size), name="images")
        chunks = self.patch_embedding(images)  # (B, T, K, D)
        slow = self.cell.initial_state(chunks.shape[0])  # (B, L, D)
        maps = []
        for t in range(chunks.shape[1]):  # the recurrence: one chunk per step
            fast, slow, weights = self.cell(chunks[:, t], slow)  # (B, K, D), (B, L, D), (B, h, L, K)
            maps.append(weights)
        logits = self.head(self.norm(fast).mean(dim=1))  # (B, classes): pool the last chunk
        return (logits, torch.stack(maps, dim=1)) if return_attention else logits  # (B, T, h, L, K)


def slow_stream_heatmap(weights: torch.Tensor, grid: int) -> torch.Tensor:
    """Per patch, the largest weight any latent gave it, averaged over heads, laid out on the patch grid.

    Args:
        weights: (B, T, h, L, K) from ``return_attention=True``.
        grid: patches per side, H/P (T·K = grid²).

    Returns:
        (B, grid, grid); within a chunk the weights of each latent sum to 1.
    """
    expect_shape(weights, ("B", "T", "h", "L", "K"), name="weights")
    per_token = weights.amax(dim=3).mean(dim=2)  # (B, T, K)
    return rearrange(per_token, "b t k -> b (t k)").reshape(-1, grid, grid)  # (B, gh, gw)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --- loading the Keras twin's weights -----------------------------------------------------------
def _put(param: torch.Tensor, value: torch.Tensor) -> None:
    value = torch.as_tensor(value).detach().to(param.device, param.dtype)  # Keras may hold it on another device
    if value.shape != param.shape:
        raise ValueError(f"weight shape mismatch: expected {tuple(param.shape)}, got {tuple(value.shape)}")
    param.copy_(value)


def _copy_norm(k_norm, t_norm: nn.LayerNorm) -> None:
    _put(t_norm.weight, k_norm.gamma.value.detach())
    _put(t_norm.bias, k_norm.beta.value.detach())


def _copy_dense(k_dense, t_linear: nn.Linear) -> None:
    """Keras kernels are (in, out) (or (in, h, d) / (h, d, out) in attention); torch weights (out, in)."""
    kernel = k_dense.kernel.value.detach()
    d_out = t_linear.weight.shape[0]
    kernel = kernel.reshape(-1, d_out) if kernel.dim() == 3 and kernel.shape[-1] == d_out else kernel
    _put(t_linear.weight, kernel.reshape(kernel.shape[0], -1).T)  # (out, in)
    _put(t_linear.bias, k_dense.bias.value.detach().reshape(-1))


def _copy_attention(ka, ta: NormedAttention) -> None:
    for name in ("query_norm", "key_norm", "value_norm"):
        _copy_norm(getattr(ka, name), getattr(ta, name))
    mha = ka.attention
    for k_dense, t_linear in ((mha.query_dense, ta.attention.to_q), (mha.key_dense, ta.attention.to_k),
                              (mha.value_dense, ta.attention.to_v), (mha.output_dense, ta.attention.proj)):
        _copy_dense(k_dense, t_linear)


def _copy_block(k_block, t_block: AttentionBlock | PerceptualModule) -> None:
    _copy_attention(k_block.attention, t_block.attention)
    if isinstance(t_block, PerceptualModule) and t_block.cross_attention is not None:
        _copy_attention(k_block.cross_attention, t_block.cross_attention)
    _copy_norm(k_block.ffn.norm, t_block.ffn.norm)
    _copy_dense(k_block.ffn.hidden, t_block.ffn.ffn.net[0])
    _copy_dense(k_block.ffn.out, t_block.ffn.ffn.net[-1])


@torch.no_grad()
def copy_keras_weights(keras_model, model: TemporalLatentBottleneck) -> TemporalLatentBottleneck:
    """Load a built :class:`seqlib.tlb_keras.TemporalLatentBottleneck` into its PyTorch twin.

    The two share layer names, so the copy walks both trees in step; both must have
    the same sizes and the same fast-stream ``layout`` (``ValueError`` otherwise).
    Only the weights' memory layouts differ (Conv2D kernels are (P, P, C, D), Dense
    kernels (in, out), attention kernels (D, h, d) and (h, d, D)). Needs the Keras
    torch backend.
    """
    k_embed, t_embed = keras_model.patch_embedding, model.patch_embedding
    _put(t_embed.patches.proj.weight, k_embed.proj.kernel.value.detach().permute(3, 2, 0, 1))  # (D, C, P, P)
    _put(t_embed.patches.proj.bias, k_embed.proj.bias.value.detach())
    _put(t_embed.position_embedding.table, k_embed.position_embedding.value.detach())
    _copy_norm(k_embed.norm, t_embed.norm)
    k_cell, t_cell = keras_model.cell, model.cell
    if k_cell.layout != t_cell.layout:
        raise ValueError(f"the models differ: layout {k_cell.layout!r} vs {t_cell.layout!r}")
    pairs = ([(k_cell.perceptual_module, t_cell.perceptual_module)] if t_cell.layout == "keras-example"
             else [(k_cell.self_blocks, t_cell.self_blocks), (k_cell.cross_blocks, t_cell.cross_blocks)])
    for k_list, t_list in pairs:
        if len(k_list) != len(t_list):
            raise ValueError(f"the models differ: {len(k_list)} vs {len(t_list)} blocks")
        for k_block, t_block in zip(k_list, t_list):
            _copy_block(k_block, t_block)
    _copy_block(k_cell.bottleneck, t_cell.bottleneck)
    _put(t_cell.initial_latents, k_cell.initial_latents.value.detach())
    _copy_norm(keras_model.norm, model.norm)
    _copy_dense(keras_model.head, model.head)
    return model
