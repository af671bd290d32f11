"""Wrong solutions for chapter 10's graded exercises (see tests/test_exercise_checks.py)."""

CONTEXT = ""

_LSTM = """def convlstm_step(x, h, c, weight, bias):
    gates = torch.cat([{first}, {second}], dim=-1) @ weight.T + bias
    {order} = gates.chunk(4, dim=-1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * {h_of}, c_new
"""


def _lstm(first="x", second="h", order="i, f, o, g", h_of="torch.tanh(c_new)"):
    return _LSTM.format(first=first, second=second, order=order, h_of=h_of)


WRONG = {
    "ex10-grid": [
        (
            "shortcut through seqlib.rvt.grid_partition",
            "def grid_groups(x, G):\n    return rvt.grid_partition(x, G)\n",
            r"shortcut.*seqlib",
        ),
        (
            "shortcut through einops",
            "from einops import rearrange\n"
            "def grid_groups(x, G):\n"
            "    return rearrange(x, 'b (g1 h) (g2 w) c -> (b h w) (g1 g2) c', g1=G, g2=G)\n",
            r"shortcut.*einops",
        ),
        (
            "block (window) partition instead of a grid",
            "def grid_groups(x, G):\n"
            "    B, H, W, C = x.shape\n"
            "    x = x.view(B, H // G, G, W // G, G, C)\n"
            "    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, G * G, C)\n",
            r"spaced H/G rows and W/G columns apart",
        ),
        (
            "groups in column-major order",
            "def grid_groups(x, G):\n"
            "    B, H, W, C = x.shape\n"
            "    x = x.view(B, G, H // G, G, W // G, C)\n"
            "    return x.permute(0, 4, 2, 1, 3, 5).reshape(-1, G * G, C)\n",
            r"groups should come in row-major order",
        ),
        (
            "tokens transposed inside each group",
            "def grid_groups(x, G):\n"
            "    B, H, W, C = x.shape\n"
            "    x = x.view(B, G, H // G, G, W // G, C)\n"
            "    return x.permute(0, 2, 4, 3, 1, 5).reshape(-1, G * G, C)\n",
            r"inside a group the tokens should be in row-major order",
        ),
        (
            "groups of the two images interleaved",
            "def grid_groups(x, G):\n"
            "    B, H, W, C = x.shape\n"
            "    x = x.view(B, G, H // G, G, W // G, C)\n"
            "    return x.permute(2, 4, 0, 1, 3, 5).reshape(-1, G * G, C)\n",
            r"should all come from image 0",
        ),
    ],
    "ex10-lstm": [
        (
            "shortcut through seqlib.rvt.ConvLSTM1x1",
            "def convlstm_step(x, h, c, weight, bias):\n"
            "    cell = rvt.ConvLSTM1x1(x.shape[-1])\n"
            "    cell.to_gates.weight.data, cell.to_gates.bias.data = weight.detach(), bias.detach()\n"
            "    return cell(x, (h, c))\n",
            r"shortcut.*seqlib",
        ),
        (
            "gates in PyTorch's LSTM order i, f, g, o",
            _lstm(order="i, f, g, o"),
            r"gates i, f, o, g in that order",
        ),
        (
            "columns multiplied with [h; x]",
            _lstm(first="h", second="x"),
            r"multiply \[x; h\], x first",
        ),
        (
            "tanh of the new cell state forgotten in h",
            _lstm(h_of="c_new"),
            r"new hidden state h = σ\(o\) ⊙ tanh\(new c\)",
        ),
        (
            "h computed from the old cell state",
            _lstm(h_of="torch.tanh(c)"),
            r"new hidden state h",
        ),
    ],
    "ex10-reach": [
        (
            "strict inequality P·G > H",
            "def reaches_whole_map(height, width, block, grid):\n"
            "    return block[0] * grid[0] > height and block[1] * grid[1] > width\n",
            r"reaches_whole_map.*values differ",
        ),
        (
            "rows only",
            "def reaches_whole_map(height, width, block, grid):\n    return block[0] * grid[0] >= height\n",
            r"reaches_whole_map.*values differ",
        ),
        (
            "P + G instead of P · G",
            "def reaches_whole_map(height, width, block, grid):\n"
            "    return block[0] + grid[0] >= height and block[1] + grid[1] >= width\n",
            r"reaches_whole_map.*values differ",
        ),
    ],
}
