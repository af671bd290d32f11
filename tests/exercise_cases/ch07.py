"""Wrong solutions for chapter 7's graded exercises (see tests/test_exercise_checks.py)."""

CONTEXT = ""

WRONG = {
    "ex07-partition": [
        (
            "shortcut through seqlib",
            "def partition(x, M):\n    return swin.window_partition(x, M)\n",
            r"shortcut.*seqlib",
        ),
        (
            "shortcut through einops",
            "from einops import rearrange\n"
            "def partition(x, M):\n"
            "    return rearrange(x, 'b (h m) (w n) c -> (b h w) (m n) c', m=M, n=M)\n",
            r"shortcut.*einops",
        ),
        (
            "no permute: consecutive raster tokens taken as a window",
            "def partition(x, M):\n"
            "    B, H, W, C = x.shape\n"
            "    return x.reshape(-1, M * M, C)\n",
            r"one 4×4 square",
        ),
        (
            "windows in column-major order",
            "def partition(x, M):\n"
            "    B, H, W, C = x.shape\n"
            "    x = x.view(B, H // M, M, W // M, M, C)\n"
            "    return x.permute(0, 3, 1, 2, 4, 5).reshape(-1, M * M, C)\n",
            r"windows should come in row-major order",
        ),
        (
            "tokens transposed inside each window",
            "def partition(x, M):\n"
            "    B, H, W, C = x.shape\n"
            "    x = x.view(B, H // M, M, W // M, M, C)\n"
            "    return x.permute(0, 1, 3, 4, 2, 5).reshape(-1, M * M, C)\n",
            r"inside a window the tokens should be in row-major order",
        ),
        (
            "windows of the two images interleaved",
            "def partition(x, M):\n"
            "    B, H, W, C = x.shape\n"
            "    x = x.view(B, H // M, M, W // M, M, C)\n"
            "    return x.permute(1, 3, 0, 2, 4, 5).reshape(-1, M * M, C)\n",
            r"should all come from image 0",
        ),
    ],
    "ex07-mask": [
        (
            "shortcut through seqlib.swin.shifted_window_mask",
            "def mask_from_coordinates(H, W, M, s):\n    return swin.shifted_window_mask(H, W, M, s)\n",
            r"shortcut.*shifted_window_mask",
        ),
        (
            "shortcut through the region ids",
            "def mask_from_coordinates(H, W, M, s):\n"
            "    ids = swin.window_region_ids(H, W, M, s)\n"
            "    return ids[:, :, None] == ids[:, None, :]\n",
            r"shortcut.*window_region_ids",
        ),
        (
            "grid rolled by +s instead of -s",
            "def mask_from_coordinates(H, W, M, s):\n"
            "    rows, cols = torch.meshgrid(torch.arange(H), torch.arange(W), indexing='ij')\n"
            "    coords = torch.roll(torch.stack([rows, cols], -1)[None], shifts=(s, s), dims=(1, 2))\n"
            "    win = swin.window_partition(coords, M)\n"
            "    return ((win[:, :, None] - win[:, None]).abs() < M).all(-1)\n",
            r"roll the coordinates by -s",
        ),
        (
            "no roll at all",
            "def mask_from_coordinates(H, W, M, s):\n"
            "    rows, cols = torch.meshgrid(torch.arange(H), torch.arange(W), indexing='ij')\n"
            "    win = swin.window_partition(torch.stack([rows, cols], -1)[None], M)\n"
            "    return ((win[:, :, None] - win[:, None]).abs() < M).all(-1)\n",
            r"should be masked",
        ),
        (
            "close in rows or in columns (any instead of all)",
            "def mask_from_coordinates(H, W, M, s):\n"
            "    rows, cols = torch.meshgrid(torch.arange(H), torch.arange(W), indexing='ij')\n"
            "    coords = torch.roll(torch.stack([rows, cols], -1)[None], shifts=(-s, -s), dims=(1, 2))\n"
            "    win = swin.window_partition(coords, M)\n"
            "    return ((win[:, :, None] - win[:, None]).abs() < M).any(-1)\n",
            r"close in rows and in columns",
        ),
        (
            "float mask instead of bool",
            "def mask_from_coordinates(H, W, M, s):\n"
            "    rows, cols = torch.meshgrid(torch.arange(H), torch.arange(W), indexing='ij')\n"
            "    coords = torch.roll(torch.stack([rows, cols], -1)[None], shifts=(-s, -s), dims=(1, 2))\n"
            "    win = swin.window_partition(coords, M)\n"
            "    return ((win[:, :, None] - win[:, None]).abs() < M).all(-1).float()\n",
            r"expected a bool tensor",
        ),
    ],
    "ex07-cost": [
        (
            "hw* instead of its square root",
            "def crossover_side(C, M):\n    return 2 * C + 2 * M ** 2\n",
            r"crossover_side.*values differ",
        ),
        (
            "factor 2 on M² forgotten",
            "def crossover_side(C, M):\n    return (2 * C + M ** 2) ** 0.5\n",
            r"crossover_side.*values differ",
        ),
    ],
}
