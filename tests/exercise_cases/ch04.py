"""Wrong solutions for chapter 4's graded exercises (see tests/test_exercise_checks.py)."""

CONTEXT = ""

_BOX = """
def box_mass(weights, grid, box, size):
    m, n = grid
    ch, cw = size[0] / m, size[1] / n
    x1, y1, x2, y2 = (float(v) for v in box)
    {swap}
    rows = torch.arange(m, dtype=torch.float64)
    cols = torch.arange(n, dtype=torch.float64)
    fy = (torch.minimum((rows + 1) * ch, torch.tensor(y2)) - torch.maximum(rows * ch, torch.tensor(y1))).clamp_min(0) / ch
    fx = (torch.minimum((cols + 1) * cw, torch.tensor(x2)) - torch.maximum(cols * cw, torch.tensor(x1))).clamp_min(0) / cw
    {whole}
    return float((weights.double().view(m, n) * fy[:, None] * fx[None, :]).sum())
"""


def _box(swap="", whole=""):
    return _BOX.format(swap=swap or "pass", whole=whole or "pass")


WRONG = {
    "ex04-penalty": [
        (
            "shortcut through seqlib",
            "def penalty(weights, step_mask):\n"
            "    return caption_losses.doubly_stochastic_penalty(weights, step_mask)\n",
            r"shortcut.*seqlib",
        ),
        (
            "ignores the step mask",
            "def penalty(weights, step_mask):\n    return ((1 - weights.sum(1)) ** 2).sum(-1).mean()\n",
            r"padded steps must not count",
        ),
        (
            "sums over the regions instead of the steps",
            "def penalty(weights, step_mask):\n"
            "    return ((1 - (weights * step_mask[:, :, None]).sum(-1)) ** 2).sum(-1).mean()\n",
            r"two real steps on region 0",
        ),
        (
            "sums over the batch instead of averaging",
            "def penalty(weights, step_mask):\n"
            "    return ((1 - (weights * step_mask[:, :, None]).sum(1)) ** 2).sum()\n",
            r"the mean \(4 \+ 0\) / 2 over the batch",
        ),
    ],
    "ex04-box-mass": [
        (
            "shortcut through seqlib",
            "def box_mass(weights, grid, box, size):\n"
            "    up = caption_analysis.upsample_attention(weights[None], grid, size)[0]\n"
            "    return float(caption_analysis.mass_in_box(up, torch.as_tensor(box)))\n",
            r"shortcut.*seqlib",
        ),
        (
            "shortcut through an upsampled map",
            "import torch.nn.functional as F\n"
            "def box_mass(weights, grid, box, size):\n"
            "    up = F.interpolate(weights.view(1, 1, *grid), size=size)[0, 0]\n"
            "    up = up / up.sum() * weights.sum()\n"
            "    x1, y1, x2, y2 = (int(v) for v in box)\n"
            "    return float(up[y1:y2, x1:x2].sum())\n",
            r"shortcut.*interpolate",
        ),
        (
            "swaps x and y",
            _box(swap="x1, y1, x2, y2 = y1, x1, y2, x2"),
            r"box_mass for \[8, 16, 16, 24\]",
        ),
        (
            "swaps the image's height and width",
            _box(swap="ch, cw = size[1] / m, size[0] / n"),
            r"box_mass for .* on a \(4, 6\) grid of a \(H, W\) = \(32, 60\) image",
        ),
        (
            "counts a cell whole when its centre is in the box (no partial overlap)",
            _box(whole="fy, fx = (fy > 0.5).double(), (fx > 0.5).double()"),
            r"box_mass for \[3, 5, 29, 41\]",
        ),
    ],
    "ex04-coverage": [
        (
            "uniform penalty off by a factor N",
            "def coverage_penalties(T, N):\n    return float(N - T), float((N - T) ** 2)\n",
            r"pattern \(b\), uniform attention",
        ),
        (
            "focused penalty counts the looked-at regions",
            "def coverage_penalties(T, N):\n    return float(T), (N - T) ** 2 / N\n",
            r"pattern \(a\), one region per word",
        ),
    ],
}
