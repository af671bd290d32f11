"""Image captioning with attention over CNN regions: Show, Attend and Tell (Xu
et al. 2015).

A CNN keeps its last ``m x n x C`` feature map instead of pooling it; the map
is unrolled into ``N = m n`` region vectors ``a_i`` (B, N, C), each seeing one
patch of the image. An LSTM writes the caption one word at a time, and at every
step attends to the regions: ``c_t = sum_i alpha_ti a_i`` with ``alpha_t``
computed from the previous state ``h_{t-1}`` by a score of :mod:`seqlib.scores`
(additive by default), so ``y_t = g(y_{t-1}, h_{t-1}, c_t)``. The decoder is
chapter 3's decoder step (:class:`seqlib.seq2seq.Decoder`) with an LSTM whose
initial ``h_0, c_0`` come from the mean region (Xu et al. Sec. 3.1.2); greedy
and beam search are :mod:`seqlib.decoding`'s, through the same step protocol as
the translation model (:class:`seqlib.seq2seq.StepDecoding`). *Soft* attention
trains by backpropagation, with the doubly stochastic regulariser
``lambda sum_i (1 - sum_t alpha_ti)^2``; *hard* attention samples one region
per word and trains the sampler with REINFORCE (Williams 1992) against a
moving-average baseline: both losses are in :mod:`seqlib.caption_losses`, the
read-outs of the attention (masses in boxes, relation baselines, BLEU-1..4) in
:mod:`seqlib.caption_analysis`. Shape letters: B batch, C channels, H/W image
size, m/n feature-map rows/columns, N = m n regions, T caption length, V
vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import einops
import torch
from torch import nn

from seqlib import attention, decoding
from seqlib.data.translation import Vocab, pad_sequences
from seqlib.scores import attend, score_function
from seqlib.seq2seq import Decoder, DecodeState, Memory, RNNState, StepDecoding
from seqlib.shapes import expect_dtype, expect_shape

# Encoders a GPU user would pick for real photos (Flickr8k), all from
# torchvision: name -> (constructor, layers kept, channels C of the kept map,
# map side at 224 px).
TORCHVISION_ENCODERS = {
    # VGG-16's conv5_3 before the last pool: a 14x14x512 map, the shape of Xu
    # et al.'s encoder (they used VGG-19's conv5_4; torchvision's vgg19 gives
    # the same shape).
    "vgg16": ("vgg16", "features[:-1]", 512, 14),
    "resnet18": ("resnet18", "children[:-2]", 512, 7),
    "resnet50": ("resnet50", "children[:-2]", 2048, 7),
}


# --- encoder -----------------------------------------------------------------
def add_coordinates(images: torch.Tensor) -> torch.Tensor:
    """Append two channels holding each pixel's x and y in [-1, 1] (B, C, H, W)
    -> (B, C + 2, H, W).

    Convolutions are translation equivariant, so regions would not know where
    they are; the relations "left of" and "above" need it (CoordConv, Liu et
    al. 2018).
    """
    B, _, H, W = images.shape
    ys = (
        torch.linspace(-1, 1, H, device=images.device)
        .view(1, 1, H, 1)
        .expand(B, 1, H, W)
    )
    xs = (
        torch.linspace(-1, 1, W, device=images.device)
        .view(1, 1, 1, W)
        .expand(B, 1, H, W)
    )
    return torch.cat([images, xs, ys], 1)  # (B, C + 2, H, W)


class SmallCNN(nn.Module):
    """Stride-2 3x3 convolutions, each halving the map: (B, C_in, H, W) -> (B,
    C, H/8, W/8) for three.

    The receptive field stays small (15 px for three stages), so a region
    vector describes its own patch of the image: that is what makes its
    attention weight readable as "where the model looks".
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: tuple[int, ...] = (16, 32, 64),
        *,
        coordinates: bool = True,
    ):
        super().__init__()
        self.coordinates = coordinates
        layers, c_in = [], in_channels + (2 if coordinates else 0)
        for c in channels:
            layers += [
                nn.Conv2d(c_in, c, 3, stride=2, padding=1),
                nn.BatchNorm2d(c),
                nn.ReLU(),
            ]
            c_in = c
        self.net = nn.Sequential(*layers)
        self.out_channels = c_in
        self.stride = 2 ** len(channels)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        expect_shape(images, ("B", None, "H", "W"), name="images")
        x = add_coordinates(images) if self.coordinates else images
        return self.net(x)  # (B, C, m, n)


def torchvision_encoder(name: str, *, pretrained: bool = False) -> nn.Module:
    """A torchvision backbone cut before its pooling, for the full profile
    (photos, a GPU).

    ``pretrained=True`` downloads ImageNet weights (never in tests or the smoke
    profile). Inputs are RGB (B, 3, 224, 224) normalised with ImageNet
    statistics.
    """
    if name not in TORCHVISION_ENCODERS:
        raise ValueError(
            f"unknown encoder {name!r}; expected one of "
            f"{sorted(TORCHVISION_ENCODERS)}"
        )
    try:
        import torchvision
    except ImportError as err:  # an optional dependency
        raise ImportError(
            f"encoder {name!r} needs torchvision: pip install torchvision"
        ) from err
    ctor, _, channels, _ = TORCHVISION_ENCODERS[name]
    net = getattr(torchvision.models, ctor)(
        weights="DEFAULT" if pretrained else None
    )
    body = (
        net.features[:-1]
        if name.startswith("vgg")
        else nn.Sequential(*list(net.children())[:-2])
    )
    body.out_channels = channels
    return body


def regions(feature_map: torch.Tensor) -> torch.Tensor:
    """Unroll a feature map into region vectors: (B, C, m, n) -> (B, m n, C),
    row by row."""
    expect_shape(feature_map, ("B", "C", "m", "n"), name="feature_map")
    return einops.rearrange(feature_map, "b c m n -> b (m n) c")  # (B, N, C)


# --- decoder -----------------------------------------------------------------
class CaptionOutput(NamedTuple):
    """Teacher-forced outputs: logits, attention and (hard attention) log-probs
    of the sampled regions."""

    logits: torch.Tensor  # (B, T, V)
    weights: (
        torch.Tensor
    )  # (B, T, N) the attention distribution alpha_t at every step
    log_probs: (
        torch.Tensor | None
    )  # (B, T) log alpha_t(s_t) of the sampled region, hard attention only


class AttentionLSTMDecoder(Decoder):
    """Chapter 3's decoder step over image regions, as in Xu et al.: an LSTM,
    ``h_0, c_0`` from the mean region.

    With ``hard=True`` the context is one region ``a_{s_t}``,
    ``s_t ~ Categorical(alpha_t)`` in training and the most likely region in
    evaluation (Xu et al. Sec. 4.1). As in the paper, a training caption uses
    the expected context (soft attention) instead with probability
    ``p_expected``, which steadies the high-variance sampled gradient.
    """

    def __init__(
        self,
        vocab: int,
        emb: int,
        hidden: int,
        d_regions: int,
        *,
        score: str = "additive",
        hard: bool = False,
        p_expected: float = 0.5,
        gate: bool = False,
    ):
        super().__init__(vocab, emb, hidden, d_regions, cell="lstm")
        if not 0 <= p_expected <= 1:
            raise ValueError(
                f"p_expected must be a probability, got {p_expected}"
            )
        self.score = score_function(
            score, d_query=hidden, d_key=d_regions, d_hidden=hidden // 2
        )
        self.init_c = nn.Linear(d_regions, hidden)
        self.hard, self.p_expected = hard, p_expected
        self.gate = (
            nn.Linear(hidden, 1) if gate else None
        )  # Sec. 4.2.1: beta_t = sigmoid(f_beta(h_{t-1}))

    def init_state(self, memory: Memory) -> RNNState:
        """``h_0, m_0`` from the mean region (Xu et al. Sec. 3.1.2)."""
        return torch.tanh(self.init(memory.final)), torch.tanh(
            self.init_c(memory.final)
        )  # (B, H) twice

    def prepare(self, memory: Memory) -> Memory:
        return memory._replace(prepared=self.score.prepare(memory.states))

    def attention(
        self,
        query: torch.Tensor,
        memory: Memory,
        expected: torch.Tensor | None = None,
    ):
        """Context (B, C), weights alpha (B, N) and, for hard attention, log
        alpha of the chosen region (B,).

        ``expected`` (B,) bool marks captions that use the soft context in
        training (their log-probability is 0: no sampling happened).
        """
        c, w = attend(
            query[:, None, :],
            memory.states,
            memory.states,
            score=self.score,
            mask=memory.mask,
            prepared=memory.prepared,
        )
        c, w = c[:, 0], w[:, 0]  # (B, C), (B, N)
        # Xu et al.'s gate: how much of the image this word needs, a scalar in
        # (0, 1) per caption
        beta = (
            1.0 if self.gate is None else torch.sigmoid(self.gate(query))
        )  # (B, 1)
        if not self.hard:
            return beta * c, w, None
        s = (
            torch.multinomial(w.detach(), 1)
            if self.training
            else w.argmax(-1, keepdim=True)
        )  # (B, 1)
        chosen = memory.states.gather(
            1, s[:, :, None].expand(-1, -1, memory.states.shape[-1])
        )[:, 0]  # (B, C)
        log_prob = w.gather(1, s)[:, 0].clamp_min(1e-12).log()  # (B,)
        if expected is not None:
            chosen = torch.where(expected[:, None], c, chosen)
            log_prob = log_prob.masked_fill(expected, 0.0)
        return beta * chosen, w, log_prob

    def context(self, query, memory):
        c, w, _ = self.attention(query, memory)
        return c, w

    def forward(self, tgt_in: torch.Tensor, memory: Memory) -> CaptionOutput:
        """Teacher forcing: ``tgt_in`` (B, T) -> :class:`CaptionOutput`.

        Under :func:`seqlib.attention.record` the weights (B, T, N) are also
        reported (as this module's).
        """
        memory, state = self.prepare(memory), self.init_state(memory)
        emb = self.embed(tgt_in)  # (B, T, E)
        expected = None
        if (
            self.hard and self.training
        ):  # one coin per caption (Xu et al. Sec. 4.1)
            expected = (
                torch.rand(tgt_in.shape[0], device=tgt_in.device)
                < self.p_expected
            )  # (B,)
        hs, cs, ws, lps = [], [], [], []
        for t in range(tgt_in.shape[1]):
            c, w, lp = self.attention(
                state[0], memory, expected
            )  # query h_{t-1}
            state = self.rnn(torch.cat([emb[:, t], c], -1), state)
            hs.append(state[0])
            cs.append(c)
            ws.append(w)
            lps.append(lp)
        logits = self.out(
            torch.cat([torch.stack(hs, 1), torch.stack(cs, 1), emb], -1)
        )  # (B, T, V)
        log_probs = torch.stack(lps, 1) if self.hard else None  # (B, T)
        weights = torch.stack(ws, 1)  # (B, T, N)
        if attention.recording():
            attention.report(self, weights)
        return CaptionOutput(logits, weights, log_probs)


class PooledLSTMDecoder(AttentionLSTMDecoder):
    """The captioner without attention: one mean-pooled vector conditions every
    step.

    The lecture's first captioner: the CNN's map is mean-pooled into one vector
    ``a_bar`` (B, C) that gives ``h_0, m_0`` (as in
    :class:`AttentionLSTMDecoder`) and is the context at every step,
    ``c_t = a_bar``. Everything else (embedding, LSTM, output layer) is the
    attention decoder's, so comparing the two measures what attention adds. The
    returned weights are uniform (1/N per region): pooling is soft attention
    that looks everywhere equally, always.
    """

    def __init__(self, vocab: int, emb: int, hidden: int, d_regions: int):
        super().__init__(vocab, emb, hidden, d_regions)
        self.score = None  # no attention parameters

    def prepare(self, memory: Memory) -> Memory:
        return memory

    def attention(
        self,
        query: torch.Tensor,
        memory: Memory,
        expected: torch.Tensor | None = None,
    ):
        B, N, _ = memory.states.shape
        return (
            memory.final,
            memory.states.new_full((B, N), 1.0 / N),
            None,
        )  # (B, C), (B, N) uniform, None


# --- the model ---------------------------------------------------------------
@dataclass(frozen=True)
class CaptionerConfig:
    """A captioning model: encoder, decoder widths, attention score and
    kind."""

    vocab: int
    in_channels: int = 1
    channels: tuple[int, ...] = (16, 32, 64)
    emb: int = 32
    hidden: int = 96
    score: str = "additive"  # a name from seqlib.scores.SCORES
    hard: bool = False
    # hard attention: share of training captions that use the soft context
    p_expected: float = 0.5
    gate: bool = False  # Xu et al.'s gating scalar beta_t on the context
    # no attention: the mean-pooled map is the context at every step
    # (PooledLSTMDecoder)
    pooled: bool = False
    encoder: str = (
        "small"  # "small" or a key of TORCHVISION_ENCODERS (full profile)
    )
    pretrained: bool = False


class Captioner(StepDecoding, nn.Module):
    """CNN encoder -> regions (B, N, C) -> attention LSTM decoder (or,
    ``pooled=True``, the pooled decoder).

    Decoding speaks :mod:`seqlib.decoding`'s step protocol:
    :meth:`start_decoding`, and ``decode_step`` / ``reorder_state`` from
    :class:`~seqlib.seq2seq.StepDecoding`.
    """

    def __init__(self, config: CaptionerConfig):
        super().__init__()
        self.config = c = config
        if c.encoder == "small":
            self.encoder = SmallCNN(c.in_channels, c.channels)
        else:
            self.encoder = torchvision_encoder(
                c.encoder, pretrained=c.pretrained
            )
        d = self.encoder.out_channels
        if c.pooled:
            if c.hard or c.gate:
                raise ValueError(
                    "pooled=True has no attention: it cannot be combined "
                    "with hard=True or gate=True"
                )
            self.decoder = PooledLSTMDecoder(c.vocab, c.emb, c.hidden, d)
            return
        self.decoder = AttentionLSTMDecoder(
            c.vocab,
            c.emb,
            c.hidden,
            d,
            score=c.score,
            hard=c.hard,
            p_expected=c.p_expected,
            gate=c.gate,
        )

    def encode(self, images: torch.Tensor) -> tuple[Memory, tuple[int, int]]:
        """Images (B, C_in, H, W) -> decoder memory over N regions, and the
        grid (m, n)."""
        fmap = self.encoder(images)  # (B, C, m, n)
        feats = regions(fmap)  # (B, N, C)
        B, N, _ = feats.shape
        lengths = torch.full((B,), N, dtype=torch.long, device=feats.device)
        return Memory(feats, feats.mean(1), None, lengths), tuple(
            fmap.shape[-2:]
        )  # no mask: all regions real

    def forward(
        self, images: torch.Tensor, tgt_in: torch.Tensor
    ) -> CaptionOutput:
        """Teacher-forced logits (B, T, V), weights (B, T, N) and sample
        log-probs for ``tgt_in`` (B, T)."""
        dims = expect_shape(
            images, ("B", self.config.in_channels, "H", "W"), name="images"
        )
        expect_shape(tgt_in, ("B", "T"), name="tgt_in", sizes=dims)
        expect_dtype(tgt_in, torch.long, name="tgt_in")
        memory, _ = self.encode(images)
        return self.decoder(tgt_in, memory)

    def start_decoding(self, images: torch.Tensor) -> DecodeState:
        """Encode images (B, C_in, H, W): the state before the first word
        (``h_0, m_0``, prepared regions)."""
        memory, _ = self.encode(images)
        return self.decoder.start(memory)

    @torch.no_grad()
    def greedy(
        self,
        images: torch.Tensor,
        *,
        max_len: int,
        bos_id: int = 1,
        eos_id: int = 2,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy captions (:func:`seqlib.decoding.greedy`): ids (B, T') and
        attention (B, T', N)."""
        return decoding.greedy(
            self,
            self.start_decoding(images),
            batch_size=images.shape[0],
            max_len=max_len,
            bos_id=bos_id,
            eos_id=eos_id,
            device=images.device,
        )

    @torch.no_grad()
    def beam_search(
        self,
        image: torch.Tensor,
        *,
        beam_size: int = 3,
        max_len: int,
        alpha: float = 0.7,
        bos_id: int = 1,
        eos_id: int = 2,
    ) -> list[int]:
        """Beam search (:func:`seqlib.decoding.beam_search`) for one image
        (C_in, H, W): the best caption's ids."""
        expect_shape(image, (None, "H", "W"), name="image (one image)")
        return decoding.beam_search(
            self,
            self.start_decoding(image[None]),
            beam_size=beam_size,
            max_len=max_len,
            alpha=alpha,
            bos_id=bos_id,
            eos_id=eos_id,
            device=image.device,
        )


# --- data and decoding -------------------------------------------------------
def caption_batches(
    images: torch.Tensor,
    captions,
    vocab: Vocab,
    *,
    batch_size: int,
    seed: int = 0,
):
    """A function yielding shuffled batches
    ``{"images", "tgt_in", "tgt_out"}``, one epoch per call.

    Each epoch every image appears once, with one of its references drawn at
    random, so over the epochs the model sees all of them (as for Flickr8k's
    five).

    Args:
        images: (N, C, H, W).
        captions: N tuples of references (token sequences).
        vocab: the caption vocabulary (``<bos>``/``<eos>`` framing, ``<pad>`` =
            0).
    """
    expect_shape(images, ("N", None, None, None), name="images")
    if len(captions) != images.shape[0]:
        raise ValueError(
            f"need one tuple of references per image: {images.shape[0]} "
            f"images, {len(captions)} caption tuples"
        )
    gen = torch.Generator().manual_seed(seed)

    def epoch():
        order = torch.randperm(images.shape[0], generator=gen)
        picks = torch.randint(0, 1 << 30, (images.shape[0],), generator=gen)
        for idx in order.split(batch_size):
            refs = [
                captions[i][int(picks[i]) % len(captions[i])]
                for i in idx.tolist()
            ]
            ids = pad_sequences(
                [vocab.encode(r, bos=True, eos=True) for r in refs]
            )  # (B, T + 1)
            yield {
                "images": images[idx],
                "tgt_in": ids[:, :-1],
                "tgt_out": ids[:, 1:],
            }

    return epoch


@torch.no_grad()
def caption_images(
    model: Captioner,
    images: torch.Tensor,
    vocab: Vocab,
    *,
    max_len: int = 24,
    beam_size: int = 1,
    batch_size: int = 256,
):
    """Captions (token lists) for images (N, C, H, W), and with greedy search
    their weights.

    Returns:
        ``captions`` (N lists of tokens) and ``weights``: N tensors (T_i + 1,
        N_regions), one row per word and one for ``<eos>`` (``None`` entries
        for beam search).
    """
    model.eval()
    device = next(model.parameters()).device
    out, attn = [], []
    for chunk in images.split(batch_size):
        chunk = chunk.to(device)
        if beam_size > 1:
            for img in chunk:
                out.append(
                    vocab.decode(
                        model.beam_search(
                            img, beam_size=beam_size, max_len=max_len
                        )
                    )
                )
                attn.append(None)
            continue
        ids, w = model.greedy(chunk, max_len=max_len)  # (B, T'), (B, T', N)
        for b in range(chunk.shape[0]):
            words = vocab.decode(ids[b].tolist())
            out.append(words)
            attn.append(w[b, : min(len(words) + 1, w.shape[1])].cpu())
    return out, attn
