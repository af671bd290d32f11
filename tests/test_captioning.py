"""Tests of seqlib.captioning, caption_losses and caption_analysis.

Regions, the attention decoder (soft and hard), losses, decoding, read-outs.
"""

import pytest
import torch

from seqlib import attention, decoding
from seqlib import caption_analysis as analysis
from seqlib import caption_losses as closs
from seqlib import captioning as cap
from seqlib.data.translation import Vocab

V, B, T, H = 12, 3, 5, 32


def tiny(hard: bool = False, score: str = "additive") -> cap.Captioner:
    torch.manual_seed(0)
    return cap.Captioner(
        cap.CaptionerConfig(
            vocab=V,
            channels=(4, 8, 8),
            emb=8,
            hidden=16,
            hard=hard,
            score=score,
        )
    )


def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(B, 1, H, H, generator=g), torch.randint(
        3, V, (B, T), generator=g
    )


def test_regions_unroll_row_by_row():
    fmap = torch.randn(2, 5, 3, 4)
    r = cap.regions(fmap)
    assert r.shape == (2, 12, 5)
    assert torch.equal(r[:, 1 * 4 + 2], fmap[:, :, 1, 2])
    with pytest.raises(
        ValueError, match=r"feature_map: expected shape \(B, C, m, n\)"
    ):
        cap.regions(torch.randn(2, 5, 3))


def test_encoder_grid_and_coordinates():
    enc = cap.SmallCNN(1, (4, 8, 8))
    assert (
        enc(torch.rand(2, 1, 48, 40)).shape == (2, 8, 6, 5) and enc.stride == 8
    )
    xy = cap.add_coordinates(torch.zeros(1, 1, 3, 5))
    assert xy.shape == (1, 3, 3, 5)
    assert torch.equal(xy[0, 1, 0], torch.linspace(-1, 1, 5)) and torch.equal(
        xy[0, 2, :, 0], torch.linspace(-1, 1, 3)
    )
    with pytest.raises(ValueError, match="unknown encoder"):
        cap.torchvision_encoder("alexnet")


@pytest.mark.parametrize("score", ["additive", "general"])
def test_soft_forward_shapes_and_attention_is_a_distribution(score):
    model = tiny(score=score)
    images, tgt = batch()
    out = model(images, tgt)
    N = (H // 8) ** 2
    assert (
        out.logits.shape == (B, T, V)
        and out.weights.shape == (B, T, N)
        and out.log_probs is None
    )
    assert bool((out.weights >= 0).all())
    torch.testing.assert_close(out.weights.sum(-1), torch.ones(B, T))


def test_teacher_forcing_is_causal():
    """Input word t feeds output t and attention from t + 1 on: earlier steps cannot see it."""
    model = tiny().eval()
    images, tgt = batch()
    changed = tgt.clone()
    changed[:, 3] = (changed[:, 3] + 1) % V
    a, b = model(images, tgt), model(images, changed)
    torch.testing.assert_close(a.logits[:, :3], b.logits[:, :3])
    torch.testing.assert_close(
        a.weights[:, :4], b.weights[:, :4]
    )  # alpha_t depends on h_{t-1}
    assert not torch.allclose(a.logits[:, 3], b.logits[:, 3])
    assert not torch.allclose(a.weights[:, 4], b.weights[:, 4])


def test_hard_attention_samples_one_region():
    model = tiny(hard=True)
    images, tgt = batch()
    model.train()
    out = model(images, tgt)
    assert out.log_probs.shape == (B, T) and bool((out.log_probs <= 0).all())
    torch.testing.assert_close(out.weights.sum(-1), torch.ones(B, T))
    # in evaluation the context is exactly the most likely region's vector
    model.eval()
    memory, _ = model.encode(images)
    memory = model.decoder.prepare(memory)
    h = torch.randn(B, 16)
    c, w, lp = model.decoder.attention(h, memory)
    torch.testing.assert_close(c, memory.states[torch.arange(B), w.argmax(-1)])
    torch.testing.assert_close(lp, w.max(-1).values.log())


def test_masked_regions_get_zero_weight():
    model = tiny().eval()
    images, _ = batch()
    memory, _ = model.encode(images)
    mask = torch.ones(B, memory.states.shape[1], dtype=torch.bool)
    mask[:, ::2] = False
    memory = model.decoder.prepare(memory._replace(mask=mask))
    _, w, _ = model.decoder.attention(torch.randn(B, 16), memory)
    assert bool((w[:, ::2] == 0).all())
    torch.testing.assert_close(w.sum(-1), torch.ones(B))


def test_doubly_stochastic_penalty_by_hand():
    eye = torch.eye(4)[
        None
    ]  # T = N = 4, each region looked at exactly once: no penalty
    assert float(closs.doubly_stochastic_penalty(eye)) == 0.0
    stare = torch.zeros(1, 4, 4)
    stare[..., 0] = (
        1  # always the first region: (1 - 4)^2 + 3 * (1 - 0)^2 = 12
    )
    assert float(closs.doubly_stochastic_penalty(stare)) == 12.0
    # padded steps do not count: the last two rows are padding
    mask = torch.tensor([[True, True, False, False]])
    assert (
        float(closs.doubly_stochastic_penalty(stare, mask))
        == (1 - 2) ** 2 + 3.0
    )
    w = torch.softmax(torch.randn(3, 5, 6), -1)
    loop = (
        sum(
            sum((1 - w[b, :, i].sum()) ** 2 for i in range(6))
            for b in range(3)
        )
        / 3
    )
    torch.testing.assert_close(closs.doubly_stochastic_penalty(w), loop)
    with pytest.raises(ValueError, match="step_mask"):
        closs.doubly_stochastic_penalty(w, torch.ones(3, 4, dtype=torch.bool))


def test_soft_loss_ignores_padding():
    model = tiny()
    images, tgt = batch()
    tgt[:, -2:] = 0
    out = model(images, tgt)
    loss, _ = closs.soft_attention_loss(out, tgt, lam=0.5)
    logits = out.logits.clone()
    logits[:, -2:] += 100
    weights = out.weights.clone()
    weights[:, -2:] = 1.0
    loss2, _ = closs.soft_attention_loss(
        cap.CaptionOutput(logits, weights, None), tgt, lam=0.5
    )
    torch.testing.assert_close(loss, loss2)


def test_hard_loss_trains_the_sampler_through_reinforce():
    model = tiny(hard=True).train()
    images, tgt = batch()
    base = closs.MovingAverageBaseline(0.9)
    base.value = 0.0  # a baseline different from the rewards, so (r - b) != 0
    loss, stats = closs.hard_attention_loss(
        model(images, tgt), tgt, base, lam_entropy=0.0
    )
    loss.backward()
    score_grad = sum(
        p.grad.abs().sum() for p in model.decoder.score.parameters()
    )
    assert float(score_grad) > 0 and stats["reward"] < 0
    with pytest.raises(ValueError, match="hard=True"):
        closs.hard_attention_loss(tiny()(images, tgt), tgt, base)


def test_moving_average_baseline():
    b = closs.MovingAverageBaseline(0.5)
    assert (
        b.update(torch.tensor([2.0, 4.0])) == 3.0
    )  # the first batch is its own baseline
    assert b.update(torch.tensor([5.0])) == 3.0 and b.value == 4.0


def test_beam_of_one_equals_greedy_and_batched_greedy_equals_one_by_one():
    model = tiny().eval()
    images, _ = batch()
    ids, w = model.greedy(images, max_len=6)
    assert w.shape == (B, ids.shape[1], (H // 8) ** 2)
    for b in range(B):
        one, _ = model.greedy(images[b : b + 1], max_len=6)
        assert torch.equal(one[0], ids[b, : one.shape[1]])
        beam = model.beam_search(images[b], beam_size=1, max_len=6, alpha=0.0)
        greedy = ids[b].tolist()
        greedy = greedy[: greedy.index(2)] if 2 in greedy else greedy
        assert beam == greedy
    assert isinstance(
        model.beam_search(images[0], beam_size=3, max_len=6), list
    )


def test_recorder_sees_the_decoders_weights():
    model = tiny().eval()
    images, tgt = batch()
    with attention.record(model) as maps:
        out = model(images, tgt)
    assert maps.names == ["decoder"] and torch.equal(
        maps[0], out.weights
    )  # (B, T, N)
    model(images, tgt)  # outside the block nothing is recorded
    assert len(maps) == 1


def test_step_protocol_and_beam_rows_equal_an_expanded_memory():
    """The captioner speaks seqlib.decoding's protocol; a reordered state is the rows of the expanded one."""
    model = tiny().eval()
    images, _ = batch()
    state = model.start_decoding(images)
    assert (
        state.memory.prepared is not None and state.memory.mask is None
    )  # every region is real
    logits, nxt, w = model.decode_step(torch.ones(B, dtype=torch.long), state)
    N = (H // 8) ** 2
    assert (
        logits.shape == (B, V)
        and w.shape == (B, N)
        and isinstance(nxt.rnn, tuple)
    )
    rows = torch.tensor([1, 1, 0, 2])
    moved = model.reorder_state(nxt, rows)
    assert moved.memory.mask is None and torch.equal(
        moved.memory.prepared, nxt.memory.prepared[rows]
    )
    assert all(torch.equal(a, b[rows]) for a, b in zip(moved.rnn, nxt.rnn))
    # one image expanded to k beams: the same next-step logits as k copies of its memory
    one = model.start_decoding(images[:1])
    k_rows = torch.zeros(3, dtype=torch.long)
    a, _, _ = model.decode_step(
        torch.tensor([4, 5, 6]), model.reorder_state(one, k_rows)
    )
    b, _, _ = model.decode_step(
        torch.tensor([4, 5, 6]),
        one._replace(
            rnn=tuple(s[k_rows] for s in one.rnn),
            memory=one.memory.select(k_rows),
        ),
    )
    assert torch.equal(a, b)
    ids, attn = model.greedy(images, max_len=5)
    ids2, attn2 = decoding.greedy(
        model, model.start_decoding(images), batch_size=B, max_len=5
    )
    assert torch.equal(ids, ids2) and torch.equal(attn, attn2)


def test_bad_inputs_are_clear_errors():
    model = tiny()
    images, tgt = batch()
    with pytest.raises(ValueError, match="tgt_in"):
        model(images, tgt.float())
    with pytest.raises(ValueError, match="tgt_in"):
        model(images, tgt[:2])
    with pytest.raises(ValueError, match="images"):
        model(images[0], tgt)


def test_caption_batches_frame_and_cover_every_image():
    vocab = Vocab(["a", "bag", "boot", "left", "of"])
    caps = [
        (("a", "bag"),),
        (("a", "boot"), ("a", "boot", "left", "of", "a", "bag")),
        (("a", "bag"),),
    ]
    epoch = cap.caption_batches(
        torch.rand(3, 1, 8, 8), caps, vocab, batch_size=2
    )
    batches = list(epoch())
    assert sum(len(b["images"]) for b in batches) == 3
    for b in batches:
        assert bool((b["tgt_in"][:, 0] == vocab.bos_id).all())
        assert torch.equal(b["tgt_in"][:, 1:], b["tgt_out"][:, :-1])
    with pytest.raises(ValueError, match="one tuple of references per image"):
        cap.caption_batches(torch.rand(2, 1, 8, 8), caps, vocab, batch_size=2)


def test_upsampled_attention_keeps_mass_and_box_mass():
    w = torch.softmax(torch.randn(4, 6), -1)  # T = 4 steps over a 2 x 3 grid
    for mode in ("nearest", "bilinear"):
        maps = analysis.upsample_attention(w, (2, 3), (8, 12), mode=mode)
        assert maps.shape == (4, 8, 12)
        torch.testing.assert_close(maps.sum((-2, -1)), torch.ones(4))
    maps = analysis.upsample_attention(w, (2, 3), (8, 12))
    # a box that is exactly region (row 1, column 2) holds that region's weight
    torch.testing.assert_close(
        analysis.mass_in_box(maps, torch.tensor([8, 4, 12, 8])), w[:, 5]
    )
    uniform = analysis.upsample_attention(
        torch.full((1, 6), 1 / 6), (2, 3), (8, 12)
    )[0]
    box = torch.tensor([1.0, 2.0, 7.0, 5.0])
    torch.testing.assert_close(
        float(analysis.mass_in_box(uniform, box)),
        analysis.box_share(box, (8, 12)),
    )


def test_a_few_steps_lower_the_loss():
    model = tiny()
    images, tgt = batch()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss, _ = closs.soft_attention_loss(
            model(images, tgt[:, :-1]), tgt[:, 1:], lam=0.1
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_bleu_1_to_4_matches_sacrebleu_orders():
    import sacrebleu

    hyps = [
        "a bag left of a boot",
        "a top",
        "a dress above a bag and a boot below the bag",
    ]
    refs = [
        ["a boot right of a bag", "a bag left of a boot"],
        ["a top", "a top"],
        [
            "a dress above a bag and a boot right of the dress",
            "a boot below a bag and a dress above the bag",
        ],
    ]
    scores = analysis.bleu_1_to_4(hyps, refs)
    for n in range(1, 5):
        want = sacrebleu.BLEU(tokenize="none", max_ngram_order=n).corpus_score(
            hyps, list(map(list, zip(*refs)))
        )
        assert abs(scores[f"BLEU-{n}"] - want.score) < 1e-6
    assert (
        scores["BLEU-1"]
        >= scores["BLEU-2"]
        >= scores["BLEU-3"]
        >= scores["BLEU-4"]
    )


def test_attention_on_named_objects_skips_other_words():
    w = torch.zeros(3, 4)  # a 2 x 2 grid on a 4 x 4 image
    w[0, 0] = w[1, 3] = w[2, 1] = 1.0
    recs = analysis.attention_on_named_objects(
        ["a", "bag", "boot"],
        w,
        {
            "bag": torch.tensor([2, 2, 4, 4]),
            "boot": torch.tensor([0, 0, 2, 2]),
        },
        (2, 2),
        (4, 4),
    )
    assert [(r["word"], r["step"], r["mass"], r["chance"]) for r in recs] == [
        ("bag", 1, 1.0, 0.25),
        ("boot", 2, 0.0, 0.25),
    ]


def test_hard_captions_with_expected_context_behave_like_soft():
    """With p_expected = 1 every training caption uses the soft context: no sample, log-prob 0."""
    torch.manual_seed(0)
    hard = cap.Captioner(
        cap.CaptionerConfig(
            vocab=V,
            channels=(4, 8, 8),
            emb=8,
            hidden=16,
            hard=True,
            p_expected=1.0,
        )
    ).train()
    torch.manual_seed(0)
    soft = cap.Captioner(
        cap.CaptionerConfig(vocab=V, channels=(4, 8, 8), emb=8, hidden=16)
    ).train()
    images, tgt = batch()
    out_h, out_s = hard(images, tgt), soft(images, tgt)
    assert bool((out_h.log_probs == 0).all())
    torch.testing.assert_close(out_h.logits, out_s.logits)
    with pytest.raises(ValueError, match="p_expected"):
        cap.AttentionLSTMDecoder(V, 8, 16, 8, hard=True, p_expected=1.5)


def test_gate_scales_the_context():
    torch.manual_seed(0)
    model = cap.Captioner(
        cap.CaptionerConfig(
            vocab=V, channels=(4, 8, 8), emb=8, hidden=16, gate=True
        )
    ).eval()
    images, tgt = batch()
    memory, _ = model.encode(images)
    memory = model.decoder.prepare(memory)
    query = torch.randn(B, 16)
    c, w, _ = model.decoder.attention(query, memory)
    beta = torch.sigmoid(model.decoder.gate(query))  # (B, 1)
    torch.testing.assert_close(
        c, beta * (w[:, :, None] * memory.states).sum(1)
    )


def test_wider_beam_finds_captions_at_least_as_likely_as_greedy():
    torch.manual_seed(3)
    model = tiny().eval()
    images, tgt = batch()
    # a few steps of training so that <eos> has a real probability
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    tgt[:, -1] = 2
    model.train()
    for _ in range(10):
        loss, _ = closs.soft_attention_loss(
            model(
                images,
                torch.cat(
                    [torch.ones(B, 1, dtype=torch.long), tgt[:, :-1]], 1
                ),
            ),
            tgt,
            lam=0.0,
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()

    @torch.no_grad()
    def log_prob(image, ids):
        seq = torch.tensor([[1] + ids + [2]])
        logits = model(image[None], seq[:, :-1]).logits
        return float(
            torch.log_softmax(logits, -1).gather(-1, seq[:, 1:, None]).sum()
        )

    for b in range(B):
        greedy = model.beam_search(
            images[b], beam_size=1, max_len=8, alpha=0.0
        )
        wide = model.beam_search(images[b], beam_size=4, max_len=8, alpha=0.0)
        assert log_prob(images[b], wide) >= log_prob(images[b], greedy) - 1e-5


def test_pooled_captioner_has_no_attention():
    """The pooled decoder reads the mean region at every step: uniform weights, no score parameters."""
    torch.manual_seed(0)
    model = cap.Captioner(
        cap.CaptionerConfig(
            vocab=V, channels=(4, 8, 8), emb=8, hidden=16, pooled=True
        )
    )
    assert (
        isinstance(model.decoder, cap.PooledLSTMDecoder)
        and model.decoder.score is None
    )
    images, tgt = batch()
    out = model(images, tgt)
    N = (H // 8) ** 2
    assert out.logits.shape == (B, T, V) and out.log_probs is None
    torch.testing.assert_close(out.weights, torch.full((B, T, N), 1 / N))
    memory, _ = model.encode(images)
    c, w, _ = model.decoder.attention(torch.zeros(B, 16), memory)
    torch.testing.assert_close(
        c, memory.states.mean(1)
    )  # the pooled vector is the context
    ids, attn = model.greedy(images, max_len=4)
    assert ids.shape[0] == B and attn.shape[-1] == N
    assert sum(p.numel() for p in model.parameters()) < sum(
        p.numel() for p in tiny().parameters()
    )
    with pytest.raises(ValueError, match="pooled=True has no attention"):
        cap.Captioner(cap.CaptionerConfig(vocab=V, pooled=True, hard=True))


def test_region_totals_and_the_penalty():
    w = torch.tensor(
        [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.2, 0.2, 0.6]]
    )  # (T=3, N=3), last row <eos>
    torch.testing.assert_close(
        analysis.region_totals(w, 2), torch.tensor([0.5, 1.5, 0.0])
    )
    torch.testing.assert_close(
        analysis.region_totals(w), torch.tensor([0.7, 1.7, 0.6])
    )
    s = analysis.region_totals(w)
    torch.testing.assert_close(
        ((1 - s) ** 2).sum(), closs.doubly_stochastic_penalty(w[None])
    )


def test_relation_baselines_by_hand():
    from seqlib.data.scenes import Scene

    # top (label 0) at the left, dress (label 3) at the right and lower: "top left of dress" and "top above dress" hold
    scene = Scene(
        torch.zeros(1, 48, 48),
        torch.tensor([0, 3]),
        torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]),
        (),
    )
    caps = [
        ("a", "top", "left", "of", "a", "dress"),  # true
        (
            "a",
            "top",
            "below",
            "a",
            "dress",
        ),  # false; 2 of 4 words would be true
        (
            "a",
            "bag",
            "right",
            "of",
            "a",
            "dress",
        ),  # bag absent: false whatever the word
        (
            "a",
            "top",
        ),
    ]  # no relation stated
    r = analysis.relation_baselines(caps, [scene] * 4)
    assert r["stated"] == 3 and r["present"] == 2
    assert r["true"] == pytest.approx(1 / 3) and r[
        "true_if_present"
    ] == pytest.approx(1 / 2)
    assert r["random"] == pytest.approx((0.5 + 0.5) / 3) and r[
        "random_if_present"
    ] == pytest.approx(0.5)
    assert r["best_fixed"] == pytest.approx(
        2 / 3
    )  # "left" (or "above") is true for both present pairs
