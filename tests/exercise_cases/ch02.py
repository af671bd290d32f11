"""Wrong solutions for chapter 2's implement exercises (see tests/test_exercise_checks.py)."""

CONTEXT = ""

_CLIP_OK = """
from collections import Counter

def my_clipped_matches(hyp, refs, n):
    def grams(tokens):
        return Counter(tuple(tokens[i:i + n]) for i in range({stop}))
    counts = grams(hyp)
    best = Counter()
    for ref in refs:
        for gram, count in grams(ref).items():
            best[gram] = {combine}
    return sum({clip} for gram, count in counts.items()), sum(counts.values())
"""


def _clip(
    stop="len(tokens) - n + 1",
    combine="max(best[gram], count)",
    clip="min(count, best[gram])",
):
    return _CLIP_OK.format(stop=stop, combine=combine, clip=clip)


WRONG = {
    "ex02-brevity": [
        (
            "shortcut through seqlib",
            "def my_brevity_penalty(c, r):\n    return metrics.brevity_penalty(c, r)\n",
            r"shortcut.*seqlib",
        ),
        (
            "shortcut through sacrebleu",
            "from sacrebleu.metrics.bleu import BLEU\n"
            "def my_brevity_penalty(c, r):\n    return BLEU.compute_bleu([0] * 4, [1] * 4, c, r).bp\n",
            r"shortcut.*sacrebleu",
        ),
        (
            "ratio inverted: exp(1 - c/r)",
            "import math\n"
            "def my_brevity_penalty(c, r):\n    return 1.0 if c > r else math.exp(1 - c / r)\n",
            r"my_brevity_penalty\(c=8, r=10\) \(exp\(1 - r/c\) when c <= r\): values differ",
        ),
        (
            "penalises long outputs too",
            "import math\n"
            "def my_brevity_penalty(c, r):\n    return 0.0 if c == 0 else math.exp(1 - r / c)\n",
            r"my_brevity_penalty\(c=10, r=8\) \(no penalty when c > r\): values differ",
        ),
        (
            "divides by zero on an empty output",
            "import math\n"
            "def my_brevity_penalty(c, r):\n    return 1.0 if c > r else math.exp(1 - r / c)\n",
            r"division by zero.*empty output",
        ),
    ],
    "ex02-clipping": [
        (
            "shortcut through seqlib",
            "def my_clipped_matches(hyp, refs, n):\n    return metrics.clipped_matches(hyp, refs, n)\n",
            r"shortcut.*seqlib",
        ),
        (
            "no clipping: every n-gram found in a reference counts",
            _clip(clip="count if best[gram] else 0"),
            r"my_clipped_matches\('the the the the the the the', n=1\): expected \(2, 7\), got \(7, 7\)",
        ),
        (
            "clips by the sum over references instead of the maximum",
            _clip(combine="best[gram] + count"),
            r"my_clipped_matches\('the the the the the the the', n=1\): expected \(2, 7\), got \(3, 7\)",
        ),
        (
            "off by one: misses the last n-gram",
            _clip(stop="len(tokens) - n"),
            r"my_clipped_matches\('the the the the the the the', n=1\): expected \(2, 7\), got \(2, 6\)",
        ),
    ],
}
