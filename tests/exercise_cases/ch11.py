"""Wrong solutions for chapter 11's graded exercises (see tests/test_exercise_checks.py)."""

CONTEXT = """
config = tlb.TLBConfig()
torch.manual_seed(0)
twin = tlb.TemporalLatentBottleneck(config).eval()
x_check = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
device = "cpu"
"""

_RUN = """def run_slow_stream(cell, chunks):
    slow = {start}
    with attention.record(cell) as maps:
        for t in {steps}:
            {body}
    return slow, tlb.slow_stream_maps(maps)
"""


def _run(
    start="cell.initial_state(chunks.shape[0])",
    steps="range(chunks.shape[1])",
    body="_, slow = cell(chunks[:, t], slow)",
):
    return _RUN.format(start=start, steps=steps, body=body)


WRONG = {
    "ex11-recurrence": [
        (
            "shortcut: run the whole model and read its maps",
            "def run_slow_stream(cell, chunks):\n"
            "    with attention.record(twin) as maps:\n"
            "        twin(x_check[:chunks.shape[0]])\n"
            "    return cell.initial_state(chunks.shape[0]), tlb.slow_stream_maps(maps)\n",
            r"shortcut.*TemporalLatentBottleneck",
        ),
        (
            "zero start latents instead of cell.initial_state",
            _run(
                start="torch.zeros_like(cell.initial_state(chunks.shape[0]))"
            ),
            r"latents of H_T should differ",
        ),
        (
            "slow stream not carried from step to step",
            _run(body="_, new = cell(chunks[:, t], slow)").replace(
                "    return slow,", "    slow = new\n    return slow,"
            ),
            r"weights of every chunk \(pass the slow stream",
        ),
        (
            "chunks fed in reverse order",
            _run(steps="reversed(range(chunks.shape[1]))"),
            r"weights of the first chunk",
        ),
        (
            "only the last chunk's weights returned",
            _run().replace(
                "tlb.slow_stream_maps(maps)",
                "tlb.slow_stream_maps(maps)[:, -1:]",
            ),
            r"weights: expected shape",
        ),
    ],
    "ex11-cost": [
        (
            "one cross-attention per layer whatever r",
            "def vit_scores(N, layers, heads):\n    return layers * heads * N * N\n"
            "def tlb_scores(N, K, L, layers, r, heads):\n    return heads * N * (layers * K + (layers + 1) * L)\n",
            r"tlb_scores.*vs the weights recorded",
        ),
        (
            "slow-stream update forgotten",
            "def vit_scores(N, layers, heads):\n    return layers * heads * N * N\n"
            "def tlb_scores(N, K, L, layers, r, heads):\n    return heads * N * (layers * K + -(-layers // r) * L)\n",
            r"tlb_scores.*vs the weights recorded",
        ),
        (
            "heads forgotten in the ViT count",
            "def vit_scores(N, layers, heads):\n    return layers * N * N\n"
            "def tlb_scores(N, K, L, layers, r, heads):\n    return heads * N * (layers * K + (-(-layers // r) + 1) * L)\n",
            r"vit_scores.*vs the weights recorded",
        ),
    ],
}
