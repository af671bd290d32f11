"""Temporal Latent Bottleneck in PyTorch: the twin of :mod:`seqlib.tlb_keras`.

Didolkar et al. (2022), "Temporal Latent Bottleneck: Synthesis of Fast and Slow
Processing Mechanisms in Sequence Learning". Image patches are embedded and cut
into chunks of K tokens. A *fast stream* (a small Transformer) reads one chunk
at a time, with self-attention over the chunk and, every r layers,
cross-attention to the *slow stream*; the slow stream is L latent vectors,
updated once per chunk by cross-attention to what the fast stream produced, and
carried from chunk to chunk like the state of an RNN. Every attention reads
layer-normed queries, keys and values and adds its result to the (un-normed)
query. The modules, their names and their weights mirror the Keras version
one-to-one, so :func:`copy_keras_weights` can load a trained Keras model here and
a test can check that both give the same logits. Images are ``(B, C, H, W)`` as
everywhere in seqlib (Keras takes ``(B, H, W, C)``). Shape letters: B batch,
C channels, H/W image size, P patch side, N patches, K tokens per chunk,
T = N/K chunks, L latents, D width, h heads.
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

    def __post_init__(self) -> None:
        check_config(self.image_size, self.patch_size, self.dim, self.chunk_size, self.num_heads, self.r)

    @property
    def num_patches(self) -> int:
        """N = (H/P)²."""
        return (self.image_size // self.patch_size) ** 2

    @property
    def num_chunks(self) -> int:
        """T = N/K, the number of recurrent steps."""
        return self.num_patches // self.chunk_size


def check_config(image_size: int, patch_size: int, dim: int, chunk_size: int, num_heads: int, r: int) -> None:
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


def tlb_tiny(**overrides) -> "TemporalLatentBottleneck":
    """Fashion-MNIST size: 28×28×1, 4×4 patches (N = 49), chunks of 7 (one patch row), D = 32."""
    return TemporalLatentBottleneck(TLBConfig(**overrides))


CIFAR_CONFIG = dict(image_size=48, patch_size=4, in_channels=3, dim=64, chunk_size=8, num_latents=8,
                    num_layers=4, r=2, num_heads=1, ffn_expansion=4, attn_dropout=0.2, ffn_dropout=0.2,
                    num_classes=10)
"""The Keras example's CIFAR-10 configuration: 48×48 crops, N = 144 patches, 18 chunks of 8."""


def tlb_cifar(**overrides) -> "TemporalLatentBottleneck":
    """The Keras example's CIFAR-10 model (about 0.4 M parameters)."""
    return TemporalLatentBottleneck(TLBConfig(**{**CIFAR_CONFIG, **overrides}))


# --- blocks -------------------------------------------------------------------------------------
class PatchEmbedding(nn.Module):
    """Patches → tokens (a strided convolution), + learned positions, layer norm, cut into chunks."""

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
    """``x + FFN(LN(x))`` with a GELU FFN of width ``expansion·D`` (chapter 5's :class:`FeedForward`)."""

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
    """:class:`NormedAttention` then :class:`FeedForwardBlock`: one layer of either stream."""

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
    """Indices of the fast-stream layers followed by a cross-attention to the slow stream."""
    return [i for i in range(num_layers) if i % r == 0]


class TLBCell(nn.Module):
    """One step of the recurrence: a chunk through the fast stream, then one slow-stream update.

    Args:
        dim: width D of both streams.
        num_latents: L, the size of the slow stream (the bottleneck).
        num_layers: fast-stream self-attention layers.
        r: a cross-attention from the fast to the slow stream after layers 0, r, 2r, ...
    """

    def __init__(self, *, dim: int, num_latents: int, num_layers: int, r: int, num_heads: int,
                 ffn_expansion: int = 4, attn_dropout: float = 0.0, ffn_dropout: float = 0.0):
        super().__init__()
        block = dict(num_heads=num_heads, ffn_expansion=ffn_expansion, attn_dropout=attn_dropout,
                     ffn_dropout=ffn_dropout)
        self.r = r
        self.self_blocks = nn.ModuleList(AttentionBlock(dim, **block) for _ in range(num_layers))
        self.cross_blocks = nn.ModuleList(AttentionBlock(dim, **block) for _ in cross_layers(num_layers, r))
        self.bottleneck = AttentionBlock(dim, **block)
        # Learned, distinct start latents: from identical (e.g. zero) latents every update is identical too.
        self.initial_latents = nn.Parameter(torch.randn(num_latents, dim) * 0.02)  # (L, D)

    def initial_state(self, batch_size: int) -> torch.Tensor:
        """The slow stream before the first chunk: (B, L, D)."""
        return self.initial_latents.expand(batch_size, -1, -1)  # (B, L, D)

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
        for i, block in enumerate(self.self_blocks):
            fast = block(fast, fast, fast)  # (B, K, D): self-attention within the chunk
            if i % self.r == 0:
                fast = self.cross_blocks[i // self.r](fast, slow, slow)  # (B, K, D): read the slow stream
        slow, weights = self.bottleneck(slow, fast, fast, return_attention=True)  # (B, L, D), (B, h, L, K)
        return fast, slow, weights


# --- the model ----------------------------------------------------------------------------------
class TemporalLatentBottleneck(nn.Module):
    """Patch embedding, the cell run over the chunks, layer norm, mean over the last chunk, linear head."""

    def __init__(self, config: TLBConfig):
        super().__init__()
        self.config = c = config
        self.patch_embedding = PatchEmbedding(image_size=c.image_size, patch_size=c.patch_size,
                                              in_channels=c.in_channels, dim=c.dim, chunk_size=c.chunk_size)
        self.cell = TLBCell(dim=c.dim, num_latents=c.num_latents, num_layers=c.num_layers, r=c.r,
                            num_heads=c.num_heads, ffn_expansion=c.ffn_expansion, attn_dropout=c.attn_dropout,
                            ffn_dropout=c.ffn_dropout)
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


def _copy_block(k_block, t_block: AttentionBlock) -> None:
    ka, ta = k_block.attention, t_block.attention
    for name in ("query_norm", "key_norm", "value_norm"):
        _copy_norm(getattr(ka, name), getattr(ta, name))
    mha = ka.attention
    for k_dense, t_linear in ((mha.query_dense, ta.attention.to_q), (mha.key_dense, ta.attention.to_k),
                              (mha.value_dense, ta.attention.to_v), (mha.output_dense, ta.attention.proj)):
        _copy_dense(k_dense, t_linear)
    _copy_norm(k_block.ffn.norm, t_block.ffn.norm)
    _copy_dense(k_block.ffn.hidden, t_block.ffn.ffn.net[0])
    _copy_dense(k_block.ffn.out, t_block.ffn.ffn.net[-1])


@torch.no_grad()
def copy_keras_weights(keras_model, model: TemporalLatentBottleneck) -> TemporalLatentBottleneck:
    """Load a built :class:`seqlib.tlb_keras.TemporalLatentBottleneck` into its PyTorch twin.

    The two share layer names, so the copy walks both trees in step; only the
    layouts differ (Conv2D kernels are (P, P, C, D), Dense kernels (in, out),
    attention kernels (D, h, d) and (h, d, D)). Needs the Keras torch backend.
    """
    k_embed, t_embed = keras_model.patch_embedding, model.patch_embedding
    _put(t_embed.patches.proj.weight, k_embed.proj.kernel.value.detach().permute(3, 2, 0, 1))  # (D, C, P, P)
    _put(t_embed.patches.proj.bias, k_embed.proj.bias.value.detach())
    _put(t_embed.position_embedding.table, k_embed.position_embedding.value.detach())
    _copy_norm(k_embed.norm, t_embed.norm)
    k_cell, t_cell = keras_model.cell, model.cell
    for k_list, t_list in ((k_cell.self_blocks, t_cell.self_blocks), (k_cell.cross_blocks, t_cell.cross_blocks)):
        if len(k_list) != len(t_list):
            raise ValueError(f"the models differ: {len(k_list)} vs {len(t_list)} blocks")
        for k_block, t_block in zip(k_list, t_list):
            _copy_block(k_block, t_block)
    _copy_block(k_cell.bottleneck, t_cell.bottleneck)
    _put(t_cell.initial_latents, k_cell.initial_latents.value.detach())
    _copy_norm(keras_model.norm, model.norm)
    _copy_dense(keras_model.head, model.head)
    return model
