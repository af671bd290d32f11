"""Loading the Keras TLB's weights into its PyTorch twin
(:mod:`seqlib.tlb_keras` → :mod:`seqlib.tlb`).

The two models have the same modules in the same places; only the names inside
a layer and the weights' memory layouts differ (Conv2D kernels are (P, P, C,
D), Dense kernels (in, out), attention kernels (D, h, d) and (h, d, D)). A
Keras ``AttentionBlock`` (``attention``: three layer norms and an MHA; ``ffn``:
a layer norm and two Dense layers) is a :class:`seqlib.layers.Block` in
PyTorch: its query norm and the FFN's norm are the block's ``norms``, the key
and value norms sit in its :class:`~seqlib.tlb.NormedKVAttention` mixer, and
the FFN is its ``mlp``.
"""

from __future__ import annotations

import torch
from torch import nn

from seqlib.layers import Block
from seqlib.tlb import (
    NormedKVAttention,
    PerceptualModule,
    TemporalLatentBottleneck,
)


def _put(param: torch.Tensor, value: torch.Tensor) -> None:
    value = (
        torch.as_tensor(value).detach().to(param.device, param.dtype)
    )  # Keras may hold it on another device
    if value.shape != param.shape:
        raise ValueError(
            f"weight shape mismatch: expected {tuple(param.shape)}, got "
            f"{tuple(value.shape)}"
        )
    param.copy_(value)


def _copy_norm(k_norm, t_norm: nn.LayerNorm) -> None:
    _put(t_norm.weight, k_norm.gamma.value.detach())
    _put(t_norm.bias, k_norm.beta.value.detach())


def _copy_dense(k_dense, t_linear: nn.Linear) -> None:
    """Keras kernels are (in, out) (or (in, h, d) / (h, d, out) in attention);
    torch weights (out, in)."""
    kernel = k_dense.kernel.value.detach()
    d_out = t_linear.weight.shape[0]
    kernel = (
        kernel.reshape(-1, d_out)
        if kernel.dim() == 3 and kernel.shape[-1] == d_out
        else kernel
    )
    _put(t_linear.weight, kernel.reshape(kernel.shape[0], -1).T)  # (out, in)
    _put(t_linear.bias, k_dense.bias.value.detach().reshape(-1))


def _copy_attention(ka, block: Block) -> None:
    """A Keras ``NormedAttention`` into a block's query norm and
    :class:`NormedKVAttention` mixer."""
    mixer: NormedKVAttention = block.mixer
    _copy_norm(ka.query_norm, block.norms[0])
    _copy_norm(ka.key_norm, mixer.key_norm)
    _copy_norm(ka.value_norm, mixer.value_norm)
    mha = ka.attention
    for k_dense, t_linear in (
        (mha.query_dense, mixer.to_q),
        (mha.key_dense, mixer.to_k),
        (mha.value_dense, mixer.to_v),
        (mha.output_dense, mixer.proj),
    ):
        _copy_dense(k_dense, t_linear)


def _copy_ffn(k_ffn, block: Block) -> None:
    """A Keras ``FeedForwardBlock`` into a block's second norm and its mlp."""
    _copy_norm(k_ffn.norm, block.norms[1])
    _copy_dense(k_ffn.hidden, block.mlp.net[0])
    _copy_dense(k_ffn.out, block.mlp.net[-1])


def _copy_block(k_block, t_block: Block | PerceptualModule) -> None:
    if isinstance(t_block, PerceptualModule):
        _copy_attention(k_block.attention, t_block.self_block)
        if t_block.cross_block is not None:
            _copy_attention(
                k_block.cross_attention, t_block.cross_block
            )  # shares the FFN copied next
        _copy_ffn(k_block.ffn, t_block.self_block)
        return
    _copy_attention(k_block.attention, t_block)
    _copy_ffn(k_block.ffn, t_block)


@torch.no_grad()
def copy_keras_weights(
    keras_model, model: TemporalLatentBottleneck
) -> TemporalLatentBottleneck:
    """Load a built :class:`seqlib.tlb_keras.TemporalLatentBottleneck` into its
    PyTorch twin.

    The two share their structure, so the copy walks both trees in step; both
    must have the same sizes and the same fast-stream ``layout``
    (``ValueError`` otherwise). Needs the Keras torch backend. Returns
    ``model``.
    """
    k_embed, t_embed = keras_model.patch_embedding, model.patch_embedding
    _put(
        t_embed.patches.proj.weight,
        k_embed.proj.kernel.value.detach().permute(3, 2, 0, 1),
    )  # (D, C, P, P)
    _put(t_embed.patches.proj.bias, k_embed.proj.bias.value.detach())
    _put(
        t_embed.position_embedding.table,
        k_embed.position_embedding.value.detach(),
    )
    _copy_norm(k_embed.norm, t_embed.norm)
    k_cell, t_cell = keras_model.cell, model.cell
    if k_cell.layout != t_cell.layout:
        raise ValueError(
            f"the models differ: layout {k_cell.layout!r} vs {t_cell.layout!r}"
        )
    pairs = (
        [(k_cell.perceptual_module, t_cell.perceptual_module)]
        if t_cell.layout == "keras-example"
        else [
            (k_cell.self_blocks, t_cell.self_blocks),
            (k_cell.cross_blocks, t_cell.cross_blocks),
        ]
    )
    for k_list, t_list in pairs:
        if len(k_list) != len(t_list):
            raise ValueError(
                f"the models differ: {len(k_list)} vs {len(t_list)} blocks"
            )
        for k_block, t_block in zip(k_list, t_list):
            _copy_block(k_block, t_block)
    _copy_block(k_cell.bottleneck, t_cell.bottleneck)
    _put(t_cell.initial_latents, k_cell.initial_latents.value.detach())
    _copy_norm(keras_model.norm, model.norm)
    _copy_dense(keras_model.head, model.head)
    return model
