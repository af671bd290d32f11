"""Wrong solutions for chapter 6's graded exercises (see tests/test_exercise_checks.py)."""

CONTEXT = ""

WRONG = {
    "ex06-unfold": [
        (
            "shortcut through F.conv2d",
            "def embed_patches(images, weight, bias, patch):\n"
            "    return F.conv2d(images, weight, bias, stride=patch).flatten(2).transpose(1, 2)\n",
            r"shortcut.*conv2d",
        ),
        (
            "shortcut through nn.Conv2d",
            "def embed_patches(images, weight, bias, patch):\n"
            "    conv = torch.nn.Conv2d(images.shape[1], weight.shape[0], patch, stride=patch)\n"
            "    conv.weight.data, conv.bias.data = weight, bias\n"
            "    return conv(images).flatten(2).transpose(1, 2)\n",
            r"shortcut.*Conv2d",
        ),
        (
            "shortcut through seqlib.layers.patchify",
            "def embed_patches(images, weight, bias, patch):\n"
            "    return layers.patchify(images, patch) @ weight.reshape(weight.shape[0], -1).T + bias\n",
            r"shortcut.*seqlib",
        ),
        (
            "each patch flattened in (row, column, channel) order",
            "def embed_patches(images, weight, bias, patch):\n"
            "    B, C, H, W = images.shape\n"
            "    blocks = images.unfold(2, patch, patch).unfold(3, patch, patch)\n"
            "    flat = blocks.permute(0, 2, 3, 4, 5, 1).reshape(B, -1, C * patch * patch)\n"
            "    return flat @ weight.reshape(weight.shape[0], -1).T + bias\n",
            r"\(channel, row, column\) order",
        ),
        (
            "patches in column-major order",
            "def embed_patches(images, weight, bias, patch):\n"
            "    B, C, H, W = images.shape\n"
            "    blocks = images.unfold(2, patch, patch).unfold(3, patch, patch)\n"
            "    flat = blocks.permute(0, 3, 2, 1, 4, 5).reshape(B, -1, C * patch * patch)\n"
            "    return flat @ weight.reshape(weight.shape[0], -1).T + bias\n",
            r"row-major order",
        ),
        (
            "bias forgotten",
            "def embed_patches(images, weight, bias, patch):\n"
            "    B, C, H, W = images.shape\n"
            "    blocks = images.unfold(2, patch, patch).unfold(3, patch, patch)\n"
            "    flat = blocks.permute(0, 2, 3, 1, 4, 5).reshape(B, -1, C * patch * patch)\n"
            "    return flat @ weight.reshape(weight.shape[0], -1).T\n",
            r"equal the bias",
        ),
        (
            "square images assumed (H used for W)",
            "def embed_patches(images, weight, bias, patch):\n"
            "    B, C, H, W = images.shape\n"
            "    n = H // patch\n"
            "    x = images[..., :H].reshape(B, C, n, patch, n, patch).permute(0, 2, 4, 1, 3, 5)\n"
            "    return x.reshape(B, n * n, -1) @ weight.reshape(weight.shape[0], -1).T + bias\n",
            r"expected shape",
        ),
    ],
    "ex06-params": [
        (
            "shortcut: build the model and count",
            "def vit_parameters(P, C, N, D, L, F_, K):\n"
            "    side = int(round(N ** 0.5)) * P\n"
            "    return layers.count_parameters(vit.ViT(vit.ViTConfig(image_size=side, patch_size=P, in_channels=C,\n"
            "        num_classes=K, dim=D, depth=L, heads=1, mlp_ratio=F_ / D)))\n",
            r"shortcut.*seqlib",
        ),
        (
            "final layer norm forgotten",
            "def vit_parameters(P, C, N, D, L, F_, K):\n"
            "    return (P * P * C + 1) * D + D + (N + 1) * D + L * (4 * D * D + 2 * D * F_ + F_ + 9 * D) + D * K + K\n",
            r"vit_parameters.*vs the parameters",
        ),
        (
            "one layer norm per block and no class-token position",
            "def vit_parameters(P, C, N, D, L, F_, K):\n"
            "    return (P * P * C + 1) * D + D + N * D + L * (4 * D * D + 2 * D * F_ + F_ + 7 * D) + 2 * D + D * K + K\n",
            r"vit_parameters.*vs the parameters",
        ),
    ],
    "ex06-rollout": [
        (
            "shortcut through seqlib.vit.attention_rollout",
            "def rollout(maps):\n"
            "    return vit.attention_rollout([m[None] for m in maps])[0]\n",
            r"shortcut.*seqlib",
        ),
        (
            "layers multiplied in the wrong order",
            "def rollout(maps):\n"
            "    n = maps[0].shape[-1]\n"
            "    result = torch.eye(n)\n"
            "    for attn in maps:\n"
            "        result = result @ (0.5 * (attn.mean(0) + torch.eye(n)))\n"
            "    return result\n",
            r"later layer's matrix goes on the left",
        ),
        (
            "identity (residual) forgotten",
            "def rollout(maps):\n"
            "    result = torch.eye(maps[0].shape[-1])\n"
            "    for attn in maps:\n"
            "        result = attn.mean(0) @ result\n"
            "    return result\n",
            r"identity stands for the residual",
        ),
        (
            "A + I not halved",
            "def rollout(maps):\n"
            "    n = maps[0].shape[-1]\n"
            "    result = torch.eye(n)\n"
            "    for attn in maps:\n"
            "        result = (attn.mean(0) + torch.eye(n)) @ result\n"
            "    return result\n",
            r"row of the rollout should sum to 1",
        ),
        (
            "heads summed instead of averaged, rows renormalised at the end",
            "def rollout(maps):\n"
            "    n = maps[0].shape[-1]\n"
            "    result = torch.eye(n)\n"
            "    for attn in maps:\n"
            "        result = (attn.sum(0) + torch.eye(n)) @ result\n"
            "    return result / result.sum(-1, keepdim=True)\n",
            r"with one layer",
        ),
    ],
}
