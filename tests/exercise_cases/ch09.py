"""Wrong solutions for chapter 9's graded exercises (see tests/test_exercise_checks.py)."""

CONTEXT = ""

_SPACE = "def space_batches(z):\n    B, nt, ns, D = z.shape\n    return z.reshape(B * nt, ns, D)\n"
_TIME = "def time_batches(z):\n    B, nt, ns, D = z.shape\n    return z.permute(0, 2, 1, 3).reshape(B * ns, nt, D)\n"

_TOKENS = """def count_tokens(frames, size, t, p, stride_t, stride_p, padding=0):
    n_t = {n_t}
    n_side = {n_side}
    return n_t * n_side * n_side
"""

WRONG = {
    "ex09-reshape": [
        (
            "shortcut through seqlib.vivit.group_tokens",
            _SPACE
            + "def time_batches(z):\n    return vivit.group_tokens(z, 'time')\n",
            r"shortcut.*seqlib",
        ),
        (
            "time_batches without the permute",
            _SPACE
            + "def time_batches(z):\n    B, nt, ns, D = z.shape\n    return z.reshape(B * ns, nt, D)\n",
            r"row b·n_s \+ s of time_batches",
        ),
        (
            "time_batches rows ordered s·B + b",
            _SPACE + "def time_batches(z):\n    B, nt, ns, D = z.shape\n"
            "    return z.permute(2, 0, 1, 3).reshape(B * ns, nt, D)\n",
            r"row b·n_s \+ s of time_batches",
        ),
        (
            "space_batches rows ordered t·B + b",
            "def space_batches(z):\n    B, nt, ns, D = z.shape\n    return z.transpose(0, 1).reshape(B * nt, ns, D)\n"
            + _TIME,
            r"row b·n_t \+ t of space_batches",
        ),
        (
            "time_batches with n_s and n_t swapped in the output",
            _SPACE
            + "def time_batches(z):\n    B, nt, ns, D = z.shape\n    return z.reshape(B * nt, ns, D)\n",
            r"time_batches: expected shape",
        ),
    ],
    "ex09-tokens": [
        (
            "shortcut through seqlib.vivit.tubelet_grid",
            "def count_tokens(frames, size, t, p, stride_t, stride_p, padding=0):\n"
            "    return vivit.tubelet_grid(frames, t, stride_t, padding) * vivit.tubelet_grid(size, p, stride_p, padding) ** 2\n",
            r"shortcut.*seqlib",
        ),
        (
            "shortcut: run a 3D convolution and count its outputs",
            "def count_tokens(frames, size, t, p, stride_t, stride_p, padding=0):\n"
            "    out = torch.nn.functional.conv3d(torch.zeros(1, 1, frames, size, size), torch.zeros(1, 1, t, p, p),\n"
            "                                     stride=(stride_t, stride_p, stride_p), padding=padding)\n"
            "    return out[0, 0].numel()\n",
            r"shortcut.*conv3d",
        ),
        (
            "the + 1 forgotten",
            _TOKENS.format(
                n_t="(frames + 2 * padding - t) // stride_t",
                n_side="(size + 2 * padding - p) // stride_p",
            ),
            r"count_tokens.*expected 27 tokens",
        ),
        (
            "padding added once instead of on both sides",
            _TOKENS.format(
                n_t="(frames + padding - t) // stride_t + 1",
                n_side="(size + padding - p) // stride_p + 1",
            ),
            r"padding 2 on every side.*expected 64",
        ),
        (
            "the kernel size used as the stride",
            _TOKENS.format(
                n_t="(frames + 2 * padding - t) // t + 1",
                n_side="(size + 2 * padding - p) // p + 1",
            ),
            r"overlapping tubelets.*expected 216",
        ),
        (
            "rounded up instead of down",
            _TOKENS.format(
                n_t="-(-(frames + 2 * padding - t) // stride_t) + 1",
                n_side="-(-(size + 2 * padding - p) // stride_p) + 1",
            ),
            r"got 64, expected 27 tokens; per axis floor",
        ),
        (
            "time and space strides swapped",
            _TOKENS.format(
                n_t="(frames + 2 * padding - t) // stride_p + 1",
                n_side="(size + 2 * padding - p) // stride_t + 1",
            ),
            r"got 121, expected 64 tokens.*time with \(t, s_t\)",
        ),
    ],
    "ex09-cost": [
        (
            "shortcut through vivit.attention_cost",
            "def cost_ratio(n_t, n_s):\n"
            "    cfg = lambda v: vivit.ViViTConfig(variant=v, frames=n_t, image_size=int(n_s ** 0.5), patch_size=1,\n"
            "                                      embedding='frame')\n"
            "    return vivit.attention_cost(cfg('joint')) / vivit.attention_cost(cfg('factorised_self_attention'))\n",
            r"shortcut.*attention_cost",
        ),
        (
            "half the ratio (harmonic mean confused)",
            "def cost_ratio(n_t, n_s):\n    return n_t * n_s / (2 * (n_t + n_s))\n",
            r"cost_ratio.*values differ",
        ),
        (
            "sum over product, upside down",
            "def cost_ratio(n_t, n_s):\n    return (n_t + n_s) / (n_t * n_s)\n",
            r"cost_ratio.*values differ",
        ),
    ],
}
