"""Wrong solutions for chapter 8's graded exercises (see tests/test_exercise_checks.py)."""

CONTEXT = """
from types import SimpleNamespace

cfg = SimpleNamespace(canvas=48)
device = "cpu"
torch.manual_seed(0)
model = detr.detr_tiny(10, num_queries=10, channels=(8, 16, 32), dim=32, heads=2, ff_dim=64, enc_layers=1,
                       dec_layers=1).eval()
_g = torch.Generator().manual_seed(0)
_labels = [torch.tensor([1, 5]), torch.tensor([7]), torch.tensor([0, 8, 9]), torch.tensor([5, 1])]
_boxes = []
for _l in _labels:
    _xy = torch.rand(len(_l), 2, generator=_g) * 28
    _boxes.append(torch.cat([_xy, _xy + 14 + torch.rand(len(_l), 2, generator=_g) * 6], 1))
test_set = SimpleNamespace(images=torch.rand(4, 1, 48, 48, generator=_g), labels=_labels, boxes=_boxes)
"""

_GIOU = """def giou(a, b):
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    wh = (torch.minimum(a[:, None, 2:], b[None, :, 2:]) - torch.maximum(a[:, None, :2], b[None, :, :2])){clamp}
    inter = wh[..., 0] * wh[..., 1]
    union = {union}
    hull_wh = torch.maximum(a[:, None, 2:], b[None, :, 2:]) - torch.minimum(a[:, None, :2], b[None, :, :2])
    hull = hull_wh[..., 0] * hull_wh[..., 1]
    return {ret}
"""


def _giou(
    clamp=".clamp(min=0)",
    union="area_a[:, None] + area_b[None, :] - inter",
    ret="inter / union - (hull - union) / hull",
):
    return _GIOU.format(clamp=clamp, union=union, ret=ret)


_COST = """def image_cost(logits, boxes, labels, target_boxes):
    prob = logits.softmax(-1)
    l1 = torch.cdist({l1}, p=1)
    g = bx.generalized_box_iou({g})
    return {ret}
"""


def _cost(
    l1="boxes, target_boxes",
    g="bx.box_cxcywh_to_xyxy(boxes), bx.box_cxcywh_to_xyxy(target_boxes)",
    ret="-prob[:, labels] + 5 * l1 - 2 * g",
):
    return _COST.format(l1=l1, g=g, ret=ret)


WRONG = {
    "ex08-giou": [
        (
            "shortcut through seqlib.boxes",
            "def giou(a, b):\n    return bx.generalized_box_iou(a, b)\n",
            r"shortcut.*seqlib",
        ),
        (
            "shortcut through torchvision",
            "def giou(a, b):\n    import torchvision\n    return torchvision.ops.generalized_box_iou(a, b)\n",
            r"shortcut.*torchvision",
        ),
        (
            "intersection not clamped at 0",
            _giou(clamp=""),
            r"clamped at 0|product of two negatives",
        ),
        (
            "plain IoU (enclosing-box term forgotten)",
            _giou(ret="inter / union"),
            r"empty 2/9 of the enclosing box",
        ),
        (
            "union without subtracting the intersection",
            _giou(union="area_a[:, None] + area_b[None, :]"),
            r"overlapping in a 1x1 square",
        ),
        (
            "(M, N) instead of (N, M)",
            _giou()
            .replace("    return inter", "    return (inter")
            .replace("(hull - union) / hull\n", "(hull - union) / hull).T\n"),
            r"expected shape \(N, M\)",
        ),
    ],
    "ex08-cost": [
        (
            "shortcut through seqlib.matcher",
            "def image_cost(logits, boxes, labels, target_boxes):\n"
            "    return matcher.matching_cost(logits[None], boxes[None], [{'labels': labels, 'boxes': target_boxes}])[0]\n",
            r"shortcut.*seqlib\.matcher",
        ),
        (
            "logits used without the softmax",
            _cost(ret="-logits[:, labels] + 5 * l1 - 2 * g"),
            r"should be -softmax\(logits\)",
        ),
        (
            "class term with the wrong sign",
            _cost(ret="prob[:, labels] + 5 * l1 - 2 * g"),
            r"should be -softmax\(logits\)",
        ),
        (
            "GIoU of the (cx, cy, w, h) boxes without converting them to corners",
            _cost(g="boxes, target_boxes"),
            r"convert with box_cxcywh_to_xyxy",
        ),
        (
            "L1 of the corner boxes instead of (cx, cy, w, h)",
            _cost(
                l1="bx.box_cxcywh_to_xyxy(boxes), bx.box_cxcywh_to_xyxy(target_boxes)"
            ),
            r"5 · L1 of the \(cx, cy, w, h\)",
        ),
        (
            "weights of L1 and GIoU swapped",
            _cost(ret="-prob[:, labels] + 2 * l1 - 5 * g"),
            r"should be -softmax\(logits\)\[q, label\]|5 · L1",
        ),
    ],
    "ex08-eos": [
        (
            "share of weight not normalised",
            "def no_object_shares(Q, objects, w):\n    return (Q - objects) / Q, (Q - objects) / Q * w\n",
            r"no_object_shares.*values differ",
        ),
        (
            "fraction and share swapped",
            "def no_object_shares(Q, objects, w):\n"
            "    e = Q - objects\n    return e * w / (e * w + objects), e / Q\n",
            r"no_object_shares.*values differ",
        ),
    ],
}
