"""Autoencoders: encoder, bottleneck, decoder — and their link to PCA.

Follows the encoder–decoder view of the lecture and Baldi & Hornik (1989): a
linear autoencoder trained with mean squared error reaches the error of PCA and
its decoder spans the top-k principal subspace, though not with orthonormal
columns. Shape letters: B batch, D input width (pixels), K bottleneck width.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from seqlib.shapes import expect_shape


class Autoencoder(nn.Module):
    """``decoder(encoder(x))`` on flat inputs.

    Args:
        encoder: maps (B, D) to the code (B, K).
        decoder: maps (B, K) back to (B, D).
        d_in: input width D, checked on every call.
    """

    def __init__(
        self, encoder: nn.Module, decoder: nn.Module, *, d_in: int
    ) -> None:
        super().__init__()
        self.encoder, self.decoder, self.d_in = encoder, decoder, d_in

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        expect_shape(x, ("B", self.d_in), "x")
        return self.encoder(x)  # (B, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encode(x))  # (B, D)


def linear_autoencoder(d_in: int, k: int) -> Autoencoder:
    """One linear layer each way, with biases: the model of the AE–PCA
    homework."""
    return Autoencoder(nn.Linear(d_in, k), nn.Linear(k, d_in), d_in=d_in)


def mlp_autoencoder(
    d_in: int,
    k: int,
    hidden: Sequence[int] = (256, 64),
    *,
    sigmoid_output: bool = True,
) -> Autoencoder:
    """A deep autoencoder whose decoder mirrors the encoder.

    Encoder ``d_in → hidden[0] → … → k`` with ReLUs, decoder
    ``k → … → hidden[0] → d_in``. A sigmoid output keeps pixels in [0, 1].
    """
    widths = [d_in, *hidden, k]
    enc: list[nn.Module] = []
    dec: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:]):
        enc += [nn.Linear(a, b), nn.ReLU()]
    for a, b in zip(widths[::-1][:-1], widths[::-1][1:]):
        dec += [nn.Linear(a, b), nn.ReLU()]
    enc.pop()  # the code itself is linear
    dec.pop()  # so is the decoder's last layer, before the squashing
    if sigmoid_output:
        dec.append(nn.Sigmoid())
    return Autoencoder(nn.Sequential(*enc), nn.Sequential(*dec), d_in=d_in)


def add_noise(
    x: torch.Tensor,
    std: float,
    *,
    generator: torch.Generator | None = None,
    clip: bool = True,
) -> torch.Tensor:
    """Corrupt ``x`` with Gaussian noise of standard deviation ``std``
    (denoising AE input).

    Args:
        x: any shape, values in [0, 1].
        std: noise standard deviation, >= 0.
        generator: for reproducible noise.
        clip: clip the result to [0, 1] so it is still an image.
    """
    if std < 0:
        raise ValueError(f"std must be >= 0, got {std}")
    noisy = x + std * torch.randn(
        x.shape, generator=generator, dtype=x.dtype, device=x.device
    )
    return noisy.clamp(0, 1) if clip else noisy


def principal_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Principal angles, in degrees and ascending, between span(a) and span(b).

    Orthonormalise both bases with QR; the singular values of ``Qa^T Qb`` are
    the cosines of the angles (Björck & Golub). 0° everywhere means the same
    subspace.

    Args:
        a: (D, K) basis of the first subspace, columns linearly independent.
        b: (D, K2) basis of the second.

    Returns:
        (min(K, K2),) angles in degrees.
    """
    sizes = expect_shape(a, ("D", None), "a")
    expect_shape(b, ("D", None), "b", sizes)
    qa, _ = torch.linalg.qr(a.detach().double())  # (D, K)
    qb, _ = torch.linalg.qr(b.detach().double())  # (D, K2)
    cosines = torch.linalg.svdvals(qa.T @ qb).clamp(-1.0, 1.0)  # (min(K, K2),)
    return torch.rad2deg(torch.arccos(cosines))  # ascending: cosines descend


@torch.no_grad()
def reconstruction_mse(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor | None = None,
    *,
    batch_size: int = 2048,
) -> float:
    """Mean squared error per pixel between ``model(x)`` and ``target``
    (default ``x``).

    Args:
        model: maps (B, D) to (B, D).
        x: (N, D) inputs.
        target: (N, D) targets, e.g. the clean images for a denoising AE.
    """
    target = x if target is None else target
    sizes = expect_shape(x, ("N", "D"), "x")
    expect_shape(target, ("N", "D"), "target", sizes)
    model.eval()
    total = sum(
        ((model(xb) - tb) ** 2).sum().item()
        for xb, tb in zip(x.split(batch_size), target.split(batch_size))
    )
    return total / x.numel()
