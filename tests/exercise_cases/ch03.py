"""Wrong solutions for chapter 3's graded exercises (see tests/test_exercise_checks.py)."""

CONTEXT = ""

_SOFTMAX = """
def my_masked_softmax(scores, mask):
    mask = mask[:, None, :]
    filled = scores.masked_fill(~mask, {fill})
    return torch.softmax(filled, dim={dim}){tail}
"""


def _softmax(fill="torch.finfo(scores.dtype).min", dim="-1", tail=" * mask"):
    return _SOFTMAX.format(fill=fill, dim=dim, tail=tail)


WRONG = {
    "ex03-additive": [
        (
            "shortcut through seqlib",
            "def my_additive_scores(query, keys, W, U, b, v):\n"
            "    m = scores.AdditiveScore(W.shape[1], U.shape[1], W.shape[0])\n"
            "    with torch.no_grad():\n"
            "        m.W.weight.copy_(W); m.U.weight.copy_(U); m.U.bias.copy_(b); m.v.weight.copy_(v[None])\n"
            "    return m(query, keys)\n",
            r"shortcut.*seqlib",
        ),
        (
            "query and key axes swapped: (B, S, T)",
            "def my_additive_scores(query, keys, W, U, b, v):\n"
            "    return torch.tanh((query @ W.T)[:, None, :, :] + (keys @ U.T + b)[:, :, None, :]) @ v\n",
            r"expected shape \(B, T, S\)=\(4, 3, 7\), got \(4, 7, 3\)",
        ),
        (
            "forgets the bias b",
            "def my_additive_scores(query, keys, W, U, b, v):\n"
            "    return torch.tanh((query @ W.T)[:, :, None, :] + (keys @ U.T)[:, None, :, :]) @ v\n",
            r"v \. tanh\(b\)",
        ),
        (
            "puts the bias outside the tanh",
            "def my_additive_scores(query, keys, W, U, b, v):\n"
            "    return (torch.tanh((query @ W.T)[:, :, None, :] + (keys @ U.T)[:, None, :, :]) + b) @ v\n",
            r"v \. tanh\(b\)",
        ),
        (
            "forgets the tanh",
            "def my_additive_scores(query, keys, W, U, b, v):\n"
            "    return ((query @ W.T)[:, :, None, :] + (keys @ U.T + b)[:, None, :, :]) @ v\n",
            r"v \. tanh\(b\)",
        ),
    ],
    "ex03-masked-softmax": [
        (
            "shortcut through seqlib",
            "def my_masked_softmax(scores, mask):\n"
            "    return attention.masked_softmax(scores, mask[:, None, :].expand_as(scores))\n",
            r"shortcut.*seqlib",
        ),
        (
            "fills with -inf: NaN on the fully masked row",
            _softmax(fill="float('-inf')"),
            r"NaN or inf.*fully masked row",
        ),
        (
            "finite fill but no multiplication by the mask: the empty row comes out uniform",
            _softmax(tail=""),
            r"no real position.*zeros",
        ),
        (
            "softmax over the wrong axis (T)",
            _softmax(dim="1"),
            r"sums to one over the real positions",
        ),
        (
            "ignores the mask",
            "def my_masked_softmax(scores, mask):\n    return torch.softmax(scores, dim=-1)\n",
            r"padded positions must get exactly 0 weight",
        ),
    ],
    "ex03-scaling": [
        (
            "standard deviation given as the variance",
            "def dot_product_moments(d):\n    return 0.0, d ** 0.5\n",
            r"variance of q\.k for d = 2",
        ),
        (
            "variance d squared",
            "def dot_product_moments(d):\n    return 0.0, float(d * d)\n",
            r"variance of q\.k for d = 2",
        ),
        (
            "mean one per dimension",
            "def dot_product_moments(d):\n    return float(d), float(d)\n",
            r"mean of q\.k for d = 1",
        ),
    ],
}
