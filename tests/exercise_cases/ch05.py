"""Wrong solutions for chapter 5's graded exercises (see tests/test_exercise_checks.py)."""

CONTEXT = ""

_SDPA = """
import math

def sdpa(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / {scale}
    if {masked}:
        scores = scores.masked_fill(~mask, {fill})
    weights = torch.softmax(scores, dim=-1)
    if {masked}:
        weights = weights{tail}
    return weights @ v, weights
"""


def _sdpa(
    scale="math.sqrt(q.shape[-1])",
    masked="mask is not None",
    fill="torch.finfo(scores.dtype).min",
    tail=" * mask",
):
    return _SDPA.format(scale=scale, masked=masked, fill=fill, tail=tail)


_SINUSOID = """
def sinusoid(T, d):
    t = torch.arange(T, dtype=torch.float64)[:, None]
    omega = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / {den})
    pe = torch.zeros(T, d, dtype=torch.float64)
    {assign}
    return pe.float()
"""


def _sinusoid(
    den="d",
    assign="pe[:, 0::2], pe[:, 1::2] = torch.sin(t * omega), torch.cos(t * omega)",
):
    return _SINUSOID.format(den=den, assign=assign)


WRONG = {
    "ex05-sdpa": [
        (
            "shortcut through seqlib",
            "def sdpa(q, k, v, mask=None):\n"
            "    return attention.scaled_dot_product_attention(q, k, v, mask=mask, fast=False, return_attention=True)\n",
            r"shortcut.*seqlib",
        ),
        (
            "shortcut through torch's kernel",
            "import torch.nn.functional as F\n"
            "def sdpa(q, k, v, mask=None):\n"
            "    w = torch.softmax((q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5).masked_fill(~mask, -1e9), -1) * mask\n"
            "    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask).nan_to_num() * mask.any(-1, keepdim=True), w\n",
            r"shortcut.*scaled_dot_product_attention",
        ),
        (
            "fills with -inf: NaN on the fully masked row",
            _sdpa(fill="float('-inf')"),
            r"NaN or inf.*fully masked row",
        ),
        (
            "finite fill but no multiplication by the mask: the empty row attends uniformly",
            _sdpa(tail=""),
            r"zero for the fully masked query",
        ),
        (
            "forgets the 1/sqrt(d) scaling",
            _sdpa(scale="1.0"),
            r"vs torch .*scaled by 1/sqrt\(d\)",
        ),
        (
            "divides by d instead of sqrt(d)",
            _sdpa(scale="q.shape[-1]"),
            r"vs torch .*scaled by 1/sqrt\(d\)",
        ),
        (
            "fails without a mask",
            _sdpa(masked="True"),
            r"mask=None raised TypeError",
        ),
    ],
    "ex05-sinusoid": [
        (
            "shortcut through seqlib",
            "def sinusoid(T, d):\n    return positional.sinusoidal_encoding(T, d)\n",
            r"shortcut.*seqlib",
        ),
        (
            "cosines in the even columns, sines in the odd ones",
            _sinusoid(
                assign="pe[:, 0::2], pe[:, 1::2] = torch.cos(t * omega), torch.sin(t * omega)"
            ),
            r"column 0 = sin\(t\)",
        ),
        (
            "frequency exponent off by a factor 2: 10000^(-i/d)",
            _sinusoid(den="(2 * d)"),
            r"column 2 = sin\(t \* omega_2\)",
        ),
        (
            "sines and cosines in two halves instead of interleaved",
            _sinusoid(
                assign="pe[:, :d // 2], pe[:, d // 2:] = torch.sin(t * omega), torch.cos(t * omega)"
            ),
            r"column 1 = cos\(t\)",
        ),
    ],
    "ex05-cost": [
        (
            "one product of N^2 D for the attention instead of two",
            "def layer_macs(N, D):\n    return 4 * N * D * D + N * N * D, 6 * N * D * D\n",
            r"self-attention layer, N = 3, D = 8",
        ),
        (
            "GRU with two gates' worth of products",
            "def layer_macs(N, D):\n    return 4 * N * D * D + 2 * N * N * D, 4 * N * D * D\n",
            r"one GRU layer, N = 3, D = 8",
        ),
        (
            "GRU counted with only the recurrent products",
            "def layer_macs(N, D):\n    return 4 * N * D * D + 2 * N * N * D, 3 * N * D * D\n",
            r"one GRU layer",
        ),
    ],
}
