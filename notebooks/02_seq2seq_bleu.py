# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # RNN encoder–decoders and BLEU
#
# A translation system reads a sentence in one language and writes it in another.
# This chapter builds the classic neural answer, an *encoder–decoder* of two
# recurrent networks {cite}`cho2014properties,sutskever2014sequence`, trains it on a small
# artificial language pair that reorders words the way German or Hindi does, and
# measures it with BLEU {cite}`papineni2002bleu`, which we derive and then check
# against sacrebleu {cite}`post2018call`. The experiment at the end shows the
# weakness that motivates the rest of the book: the whole source must squeeze
# through one fixed-size vector, and the longer the sentence, the worse the
# translation.
#
# **Learning goals.** After this chapter you can
#
# - explain why translation reads the whole source before writing (word order),
#   and what the context vector of an encoder–decoder is;
# - write the model's equations, train it with teacher forcing, and decode with
#   greedy and beam search;
# - compute BLEU by hand (clipped n-gram precision, brevity penalty, geometric
#   mean), reproduce sacrebleu's number and report its signature;
# - show, with a plot, that a fixed context vector loses BLEU as sentences grow.

# %%
# Setup: on Colab, installs seqlib (keeping Colab's own torch); locally the
# README's commands already did.
import importlib.util
import os
import subprocess
import sys
from importlib.metadata import version

if importlib.util.find_spec("seqlib") is None:
    url = "https://github.com/attention-course/attention-book"
    repo = os.environ.get("SEQLIB_REPO", url)  # or your fork's URL
    # pin the installed torch (Colab's CUDA build), so that pip keeps it
    has_torch = importlib.util.find_spec("torch") is not None
    keep = [f"torch=={version('torch')}"] if has_torch else []
    pip = [sys.executable, "-m", "pip", "install", "-q", *keep]
    subprocess.run([*pip, f"seqlib @ git+{repo}"], check=True)

from seqlib.notebook import start

device = start("ch02")

# %%
import textwrap
import time

import matplotlib.pyplot as plt
import numpy as np

from seqlib import claims, decoding, metrics, profiles, seq2seq
from seqlib.data import load_multi30k, translation
from seqlib.data.translation import BucketBatches, make_batch, translation_task
from seqlib.notebook import show
from seqlib.profiles import sizes
from seqlib.train import benchmark, fit, seed_everything, seed_for
from seqlib.viz_seq import plot_bleu_by_length

S = sizes("ch02")
print(S)


def print_words(label: str, words) -> None:
    """Print a sentence after ``label``, wrapped to the page's width."""
    print(
        textwrap.fill(
            " ".join(words),
            79,
            initial_indent=label,
            subsequent_indent=" " * len(label),
        )
    )


# %% [markdown]
# ## Translation is sequence to sequence
#
# In a *many-to-many* recurrent network that emits one output per input step, the
# output at step $t$ can only depend on the first $t$ source words. Translation
# cannot work that way: languages order their words differently, so the word a
# translation needs next may not have been read yet. The German or Hindi verb, for
# instance, comes at the end of the clause, after the object that follows it in
# English. Translation systems therefore **read the whole source first** and only
# then start writing.
#
# The encoder is a recurrent network over the source words $x_1, \dots, x_S$:
#
# $$
# h_j = f(x_j, h_{j-1}), \qquad j = 1, \dots, S,
# $$ (eq-encoder)
#
# and its states are summarised in a single **context vector** $c$. In the
# simplest (and in this chapter's) model, $c$ is the last state, $c = h_S$; with a
# bidirectional encoder it is the last forward state next to the last backward one.
# The decoder is a second recurrent network that writes the target $y_1, \dots,
# y_T$ one word at a time, conditioned on $c$ at every step
# {cite}`cho2014properties`:
#
# $$
# s_t = g(s_{t-1}, y_{t-1}, c), \qquad
# p(y_t \mid y_{<t}, x) = \operatorname{softmax}\big(W_o [s_t; c; E y_{t-1}]\big),
# $$ (eq-decoder)
#
# with $s_0 = \tanh(W_s c)$ and $y_0 = $ `<bos>`. The model is trained to maximise
# the log-likelihood of the reference translation,
#
# $$
# \mathcal{L} = -\sum_{t=1}^{T} \log p(y_t \mid y_{<t}, x),
# $$ (eq-nll)
#
# where the previous words $y_{<t}$ fed to the decoder are the *true* ones, not the
# model's own guesses: this is **teacher forcing**. At step $t$ the decoder gets the
# reference word $y_{t-1}$ instead of its own prediction, so training always sees
# correct prefixes, needs no sampling or decoding, and obtains the loss of every
# target position in one pass of the decoder over the reference. That pass is
# still a loop over time: the GRU needs $s_{t-1}$ before it can compute $s_t$, so
# the steps run one after another ({py:meth}`seqlib.seq2seq.Decoder.forward` loops over the target
# positions). Training that is parallel across the target needs a decoder without
# recurrence, the Transformer of chapter 5. The price of teacher forcing is
# *exposure bias*: at test time the decoder must live with its own mistakes,
# prefixes it never saw in training.
#
# Everything the decoder knows about the source passes through $c$ in
# {eq}`eq-decoder`: a vector of fixed size, whether the sentence has 5 words or 40.

# %% [markdown]
# ## Data: two small languages that reorder words
#
# Real corpora need hours of GPU time before the effect we are after shows. We use
# a generated language pair instead, made to have the difficulties that matter: an
# English-like source, and a target where every clause is **verb-final**,
# adjectives **follow** the noun and **agree** with its gender and number,
# articles mark gender, number and case, and the verb agrees with its subject.
# Clauses are joined by conjunctions, and some carry a relative clause, so the
# length of a sentence is ours to choose. A free adverb position and two synonyms
# give several correct translations of many sentences; they all become BLEU
# references. Here is the grammar of one clause:

# %%
show(
    translation._clause,
    "One clause: the source in English order, and every correct target with "
    "its verb last",
)

# %%
# Random streams (seed_for): 0 and 1 generate and split the data (0 also
# initialises the model), 2 orders the training batches, 3 the random batches
# below, 4 and 5 the (unshuffled) test batches.
if S.corpus == "generated":
    data = translation_task(
        S.n_train,
        S.n_valid,
        S.n_test,
        min_len=S.min_len,
        max_len=S.max_len,
        seed=seed_for(0),
    )
else:  # the full profile: Multi30k, downloaded into the cache on first use
    data = load_multi30k()
for pair in data.train[:3]:
    print_words("source:    ", pair.src)
    for ref in pair.refs:
        print_words("reference: ", ref)
    print()
print(
    f"{len(data.train)} / {len(data.valid)} / {len(data.test)} pairs; "
    "vocabularies: "
    f"{len(data.src_vocab)} source, {len(data.tgt_vocab)} target tokens"
)

# %% [markdown]
# Every clause of every reference ends with its verb, whatever the source order;
# the check below is the same one the tests run.

# %% mystnb={"image": {"alt": "Histogram of the source sentence lengths in the training set, spread from 3 to 40 tokens."}}
verbs = {
    stem + end
    for _, _, stem in translation.TRANSITIVE + translation.INTRANSITIVE
    for end in ("t", "en")
}
conjunctions = {tgt for _, tgt in translation.CONJUNCTIONS}
for pair in data.test if S.corpus == "generated" else []:
    for ref in pair.refs:
        ends = [
            ref[i - 1] for i, tok in enumerate(ref) if tok in conjunctions
        ] + [ref[-1]]
        assert all(tok in verbs for tok in ends), ref

src_lengths = np.array([len(p.src) for p in data.train])
fig, ax = plt.subplots(figsize=(6, 3))
ax.hist(
    src_lengths,
    bins=np.arange(src_lengths.min(), src_lengths.max() + 2) - 0.5,
    color="0.4",
)
ax.set_xlabel("source sentence length (tokens)")
ax.set_ylabel("training sentences")
ax.set_title("Sentence lengths in the training set")
plt.show()

# %% [markdown]
# ## Vocabularies, padding and length-aware batches
#
# Each language gets its own vocabulary, with four special tokens: `<pad>` (0)
# fills short sentences up to the batch's longest, `<bos>` starts the decoder,
# `<eos>` ends every sentence and `<unk>` stands for words never seen in
# training. The decoder input `tgt_in` is the target shifted right by one step
# behind `<bos>`; `tgt_out` is what it must predict.

# %%
batch = make_batch(data.train[:2], data.src_vocab, data.tgt_vocab)
for key, value in batch.items():
    print(f"{key:12s} {tuple(value.shape)}")
print_words(
    "tgt_in:  ",
    [data.tgt_vocab.itos[batch["tgt_in"][0, 0]]]
    + data.tgt_vocab.decode(batch["tgt_in"][0]),
)
print_words(
    "tgt_out: ",
    data.tgt_vocab.decode(batch["tgt_out"][0]) + [data.tgt_vocab.itos[2]],
)

# %% [markdown]
# Padding costs decoder steps for nothing. Batches of sentences of similar length
# (*bucketing*, {py:class}`seqlib.data.translation.BucketBatches`) waste far less than random batches: on seeds 0–2 less than 4% of
# the padding of random batches.


# %%
def padding_fraction(batches):
    real = sum(int(b["src_lengths"].sum()) for b in batches)
    total = sum(b["src"].numel() for b in batches)
    return 1 - real / total


bucketed = BucketBatches(
    data.train,
    data.src_vocab,
    data.tgt_vocab,
    batch_size=S.batch_size,
    seed=seed_for(2),
)
random_batches = BucketBatches(
    data.train,
    data.src_vocab,
    data.tgt_vocab,
    batch_size=S.batch_size,
    seed=seed_for(3),
    pool=1,
)
waste_bucketed, waste_random = (
    padding_fraction(list(bucketed)),
    padding_fraction(list(random_batches)),
)
claims.check(
    "ch02-bucketing-cuts-padding",
    "Length-bucketed batches waste less than a tenth of the padding that "
    "random batches waste",
    waste_bucketed / waste_random,
    "< 0.1",
)
print(
    f"padding: {waste_random:.0%} of source positions in random batches, "
    f"{waste_bucketed:.0%} when bucketed"
)

# %% [markdown]
# ## The model
#
# {py:mod}`seqlib.seq2seq` holds both models of chapters 2 and 3. They share one decoder
# step, {eq}`eq-decoder`; the *plain* decoder's context is the encoder
# summary, fixed for the whole sentence:

# %%
show(seq2seq.Decoder._advance)
show(seq2seq.Decoder.step)
show(seq2seq.PlainDecoder)

# %%
seed_everything(seed_for(0))
plain = seq2seq.plain_seq2seq(
    len(data.src_vocab), len(data.tgt_vocab), emb=S.emb, hidden=S.hidden
)
n_params = sum(p.numel() for p in plain.parameters())
print(
    f"encoder output width D = {plain.encoder.out_dim}; context vector c has "
    f"{plain.encoder.out_dim} numbers"
)
print(f"parameters: {n_params:,}")
logits = plain(batch["src"], batch["src_lengths"], batch["tgt_in"])
assert logits.shape == (*batch["tgt_in"].shape, len(data.tgt_vocab))
print("logits:", tuple(logits.shape), "= (B, T, V)")

# %% [markdown]
# ## Training with teacher forcing
#
# A recurrent network is trained by backpropagation through time. The gradient of
# the loss at step $t$ with respect to an earlier state $s_k$ contains a product of
# one Jacobian $\partial s_i / \partial s_{i-1}$ for every step in between. If
# these Jacobians shrink vectors, the product decays exponentially with the
# distance $t - k$: **vanishing gradients**, so the loss barely trains the model to
# use inputs far back {cite}`bengio1994learning`. If they stretch vectors, it grows
# exponentially: **exploding gradients**, rare but huge gradients that throw the
# weights far off in a single update {cite}`pascanu2013difficulty`. Gated cells
# such as the GRU ease the first problem (their state update is an interpolation,
# which gives the gradient a path that is not squashed at every step); they do not
# prevent the second. The usual guard is **gradient clipping**
# {cite}`pascanu2013difficulty`: when the norm of the whole gradient (all
# parameters together) exceeds a threshold $\tau$, rescale it to norm $\tau$ and
# keep its direction, $g \leftarrow g \cdot \min(1, \tau / \lVert g \rVert)$.
# {py:func}`seqlib.train.fit` does this with PyTorch's `clip_grad_norm_` after every
# backward pass when it gets `grad_clip`; this chapter and the next use
# $\tau = 1$ (`grad_clip=1.0` below).
#
# One step of training computes {eq}`eq-nll` on a batch with the true previous
# words as decoder input:

# %%
show(seq2seq.train_step)

# %%
# NBVAL_IGNORE_OUTPUT
t0 = time.perf_counter()
history = fit(
    plain,
    bucketed,
    seq2seq.train_step,
    epochs=S.epochs,
    lr=S.lr,
    grad_clip=1.0,
    device=device,
    desc="plain",
)
train_seconds = time.perf_counter() - t0
print(
    f"trained {S.epochs} epochs in {train_seconds:.0f} s; final training loss "
    f"{history.last('loss'):.3f}"
)

# %% mystnb={"image": {"alt": "Training loss of the plain encoder-decoder per epoch, falling steadily over the run."}}
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(range(1, len(history["loss"]) + 1), history["loss"], marker="o")
ax.set_xlabel("epoch")
ax.set_ylabel("cross-entropy (nats per target token)")
ax.set_title("Plain encoder–decoder: training loss")
claims.check(
    "ch02-training-loss-falls",
    "The training loss falls by more than 20% over the run (last/first epoch)",
    history["loss"][-1] / history["loss"][0],
    "< 0.8",
)
plt.show()

# %% [markdown]
# On seeds 0–2 the last epoch's training loss is about a third of the first's
# (0.32–0.34 of it).
#
# ## Decoding: greedy and beam search
#
# At test time there is no reference to feed back. **Greedy** decoding takes the
# most likely word at each step and feeds it in next; it is fast and batched, but a
# word that looks best now may force a poor continuation. **Beam search** keeps the
# $k$ best partial translations by total log-probability, extends each by every
# word, and keeps the $k$ best again. Summing log-probabilities favours short
# outputs (every word adds a negative term), so finished translations are compared
# by a length-normalised score. Wu et al. {cite}`wu2016google` divide the
# log-probability by the length penalty $\mathrm{lp}(Y) = \big((5 + |Y|)/6\big)^{\alpha}$.
# {py:func}`seqlib.decoding.beam_search` uses the simpler $\log p / T^{\alpha}$ with $\alpha = 0.7$, where $T$
# counts the output's words and its `<eos>`: the same idea without the offset 5.
# Both leave the order of equally long hypotheses unchanged and differ only in how
# strongly they reward length. The constant $6^{\alpha}$ changes no ranking, and the
# offset makes Wu et al.'s penalty grow more slowly than $T^{\alpha}$ for short
# outputs, so it favours length less. The normalisation applies only to finished
# translations; the $k$ unfinished ones all have the same length, and raw
# log-probability ranks them.
#
# The search lives in {py:mod}`seqlib.decoding`, apart from any model: a model only says
# how to take one step (`decode_step`: previous word and state in, next-word
# logits and state out) and how to follow the surviving beams (`reorder_state`).
# The same rules (this length penalty, when an `<eos>` counts, when to stop)
# serve this RNN, the captioner of chapter 4 and the Transformer of chapter 5.

# %%
show(
    decoding.beam_search,
    "Beam search: extend every beam by every word, keep the k best, and rank "
    "finished outputs by their length-normalised log-probability",
)
show(
    seq2seq.StepDecoding,
    "What the RNN provides to the search: one decoding step, and its state "
    "reordered to follow the surviving beams",
)

# %%
test_batches = BucketBatches(
    data.test,
    data.src_vocab,
    data.tgt_vocab,
    batch_size=256,
    shuffle=False,
    seed=seed_for(4),
)
refs = [p.refs for p in data.test]
# (beam search, one sentence at a time, is slow on a CPU: a dry run caps it)
few = data.test[: profiles.dry_run_cap(S.n_beam, 32)]
few_batches = BucketBatches(
    few,
    data.src_vocab,
    data.tgt_vocab,
    batch_size=64,
    shuffle=False,
    seed=seed_for(5),
)
# decoding is deterministic: every timed repeat gives the same translations
decoded = {}
greedy_time = benchmark(
    lambda: decoded.update(
        greedy=seq2seq.translate(plain, test_batches, data.tgt_vocab)
    ),
    repeats=5,
    warmup=1,
)
beam_time = benchmark(
    lambda: decoded.update(
        beam=seq2seq.translate(
            plain, few_batches, data.tgt_vocab, beam_size=S.beam_size
        )
    ),
    repeats=3,
    warmup=0,
)
greedy_hyps, beam_hyps = decoded["greedy"], decoded["beam"]
bleu_greedy_few = metrics.corpus_bleu(
    greedy_hyps[: len(few)], refs[: len(few)]
).score
bleu_beam_few = metrics.corpus_bleu(beam_hyps, refs[: len(few)]).score
if S.corpus == "generated":  # the smoke profile's weak model
    claims.check(
        "ch02-beam-no-better-than-greedy",
        "On the weak smoke-profile model, beam search raises BLEU over greedy "
        "decoding by less than 1.5 points",
        bleu_beam_few - bleu_greedy_few,
        "< 1.5",
    )

# %%
# NBVAL_IGNORE_OUTPUT
for i in (0, 1):
    print_words("source:  ", data.test[i].src)
    print_words("greedy:  ", greedy_hyps[i])
    print_words("beam:    ", beam_hyps[i])
    print_words("ref:     ", data.test[i].refs[0])
    print()
print(
    f"BLEU on the first {len(few)} test sentences: "
    f"greedy {bleu_greedy_few:.1f}, beam {bleu_beam_few:.1f}"
)
print("time, median of the repeats (spread: (max - min) / median):")
print(
    f"  greedy {greedy_time.median:.2f} s ({greedy_time.spread:.0%}) "
    f"for all {len(data.test)} sentences (batched)"
)
print(
    f"  beam   {beam_time.median:.2f} s ({beam_time.spread:.0%}) "
    f"for {len(few)} (one sentence at a time)"
)

# %% [markdown]
# Beam search looks for outputs that the *model* scores higher. Whether that raises
# BLEU depends on how good the model's scores are: on a model this weak, whose
# probabilities are unreliable on long sentences, it barely matters (on seeds 0–2
# beam search changed BLEU on these 150 sentences by −0.7 to +0.4 points), and no
# search can recover information the context vector never held.

# %% [markdown]
# ## BLEU, derived
#
# BLEU compares a system's translations with references by counting shared
# n-grams. For each order $n = 1..4$, the **modified n-gram precision** counts
# how many of the hypothesis n-grams also appear in a reference, but *clips* each
# n-gram's count at the largest number of times it occurs in any single
# reference, so that "the the the the" earns no more than the references allow:
#
# $$
# p_n = \frac{\sum_{\text{sentences}} \sum_{g \in \text{n-grams}(\hat y)}
#        \min\big(\text{count}_{\hat y}(g),\ \max_{r} \text{count}_{r}(g)\big)}
#       {\sum_{\text{sentences}} \sum_{g \in \text{n-grams}(\hat y)} \text{count}_{\hat y}(g)} .
# $$ (eq-pn)
#
# Precision alone rewards saying little. The **brevity penalty** punishes a corpus
# of hypotheses of total length $c$ that is shorter than the effective reference
# length $r$ (the sum, over sentences, of the reference length closest to the
# hypothesis length):
#
# $$
# \mathrm{BP} = \begin{cases} 1 & c > r \\ e^{\,1 - r/c} & c \le r \end{cases}
# $$ (eq-bp)
#
# and BLEU is the brevity penalty times the geometric mean of the precisions,
#
# $$
# \mathrm{BLEU} = \mathrm{BP} \cdot \exp\Big(\tfrac{1}{4}\sum_{n=1}^{4} \log p_n\Big).
# $$ (eq-bleu)
#
# The counts are summed over the whole corpus before dividing: BLEU is a corpus
# metric, not an average of sentence scores. Our hand-written version,
# {py:func}`seqlib.metrics.bleu_by_hand`, with its two helpers:

# %%
show(
    metrics.clipped_matches,
    "Clipped n-gram matches and the n-gram total of one sentence",
)
show(metrics.brevity_penalty)
show(
    metrics.bleu_by_hand,
    "BLEU from its definition: corpus totals of clipped n-gram counts, "
    "geometric mean, brevity penalty",
)

# %% [markdown]
# A worked example with two references. The hypothesis repeats "the" three times
# but no reference has it more than twice, so one of them is clipped; and it is one
# word shorter than the closest reference, so it pays a brevity penalty.

# %%
hyp = "the the the cat on mat".split()
ex_refs = [
    "the cat is sitting on the mat".split(),
    "there is a cat sitting on the mat".split(),
]
for n in (1, 2, 3, 4):
    m, t = metrics.clipped_matches(hyp, ex_refs, n)
    print(f"p_{n} = {m}/{t}")
r = metrics.closest_ref_length(len(hyp), [len(x) for x in ex_refs])
print(
    f"c = {len(hyp)}, r = {r}, BP = exp(1 - {r}/{len(hyp)}) = "
    f"{metrics.brevity_penalty(len(hyp), r):.4f}"
)
print(
    "no 3-gram matches: sacrebleu's default smoothing replaces p_3 = 0 by "
    "1/(2 * 4),\np_4 by 1/(4 * 3)"
)
mine = metrics.bleu_by_hand([hyp], [ex_refs])
theirs = metrics.corpus_bleu([hyp], [ex_refs])
print(f"BLEU by hand {mine.score:.4f}, sacrebleu {theirs.score:.4f}")
assert abs(mine.score - theirs.score) < 1e-9

# %% [markdown]
# And on the model's test translations, where several sentences have several
# references:

# %%
by_hand = metrics.bleu_by_hand(greedy_hyps, refs)
reference = metrics.corpus_bleu(greedy_hyps, refs)
assert abs(by_hand.score - reference.score) < 1e-9
assert by_hand.precisions == tuple(reference.precisions) or np.allclose(
    by_hand.precisions, reference.precisions
)
print("hand-written BLEU equals sacrebleu on the test set")

# %%
# NBVAL_IGNORE_OUTPUT
print(f"test BLEU (greedy) = {reference.score:.1f}")
print(
    "precisions p1..p4 (%):",
    [round(p, 1) for p in reference.precisions],
    f" BP = {reference.bp:.3f}",
)
print("sacrebleu signature:", reference.signature)

# %% [markdown]
# Always report the signature: it records the tokenizer, smoothing, number of
# references and sacrebleu version, without which two BLEU numbers cannot be
# compared {cite}`post2018call`. Ours says `tok:none` because our sentences are
# already tokens; on raw text use sacrebleu's default tokenizer.

# %% [markdown]
# ## The bottleneck, made visible
#
# Now the question of the chapter: does the plain model translate long sentences
# as well as short ones? We split the test set by source length and compute BLEU
# in each bucket (Cho et al. {cite}`cho2014properties` did the same on
# English–French, Fig. 4).

# %%
test_lengths = [len(p.src) for p in data.test]
rows = metrics.bleu_by_length(greedy_hyps, refs, test_lengths, S.edges)

# %%
# NBVAL_IGNORE_OUTPUT
print(f"{'source length':>14s} {'sentences':>9s} {'BLEU':>6s}")
for row in rows:
    print(f"{row['bucket']:>14s} {row['n']:>9d} {row['bleu']:>6.1f}")

# %% mystnb={"image": {"alt": "BLEU of the plain encoder-decoder for each source-length bucket, falling from the shortest sentences to the longest."}}
fig, ax = plt.subplots(figsize=(6, 3.5))
plot_bleu_by_length(
    ax,
    {"plain encoder–decoder": rows},
    title="Plain encoder–decoder: BLEU falls with sentence length",
)
plt.show()

# %%
shortest, longest = rows[0]["bleu"], rows[-1]["bleu"]
long_idx = [
    i
    for i, n in enumerate(test_lengths)
    if rows[-1]["lo"] <= n < rows[-1]["hi"]
]
long_bleu = metrics.corpus_bleu(
    [greedy_hyps[i] for i in long_idx], [refs[i] for i in long_idx]
)
if S.corpus == "generated":  # the claims are about the smoke profile's task
    assert all(r["n"] >= 30 for r in rows), (
        "every bucket needs enough sentences"
    )
    claims.check(
        "ch02-bleu-falls-with-length",
        "The plain encoder-decoder's BLEU on the longest sentences is less "
        "than half its BLEU on the shortest",
        longest / shortest,
        "< 0.5",
        flagship=True,
    )
    claims.check(
        "ch02-bleu-falls-bucket-by-bucket",
        "BLEU falls from each source-length bucket to the next longer one "
        "(largest step up below 0)",
        max(b["bleu"] - a["bleu"] for a, b in zip(rows, rows[1:])),
        "< 0",
    )
    claims.check(
        "ch02-short-sentences-mostly-right",
        "BLEU on the shortest sentences (3-9 words) is above 50",
        shortest,
        "> 50",
    )
    claims.check(
        "ch02-long-outputs-full-length",
        "On the longest sentences the outputs are about as long as the "
        "references (length ratio within 15%)",
        long_bleu.sys_len / long_bleu.ref_len,
        "in [0.85, 1.15]",
    )
    print("BLEU of the longest bucket is less than half that of the shortest")
elif not profiles.dry_run():  # a dry run's few steps train nothing
    assert longest < shortest, (shortest, longest)

# %% [markdown]
# Short sentences come out largely right; long ones fall apart, although the
# model saw sentences of every length during training. On seeds 0–2 BLEU falls
# from each length bucket to the next, from 59–74 on sentences of 3–9 words to
# about a fifth of that (0.18–0.22 of it) on sentences of 30–40 words: the
# chapter's flagship result, listed with its spread on the {ref}`claims-ch02`
# page. The decoder is not short of capacity to *write* long sentences (on the
# longest sentences its outputs are 0.93–1.04 times as long as the references);
# what it lacks is the *content*: one vector of 80 numbers cannot hold forty
# words, their order and their agreement features. Chapter 3 keeps all encoder
# states and lets the decoder look back at them.

# %% [markdown]
# ## Going further
#
# The full profile runs the same cells on Multi30k {cite}`elliott2016multi30k`
# (English→German, 29k training pairs) with a wider network on a GPU; the
# corpus is downloaded once into the cache with SHA-256 checks:
#
# ```bash
# SEQLIB_PROFILE=full jupyter nbconvert --to notebook --execute \
#     notebooks/02_seq2seq_bleu.ipynb
# ```
#
# No full-profile run has been recorded yet (the {doc}`../book/results` page will
# list one when it is made). Multi30k's sentences are short (13 words on average),
# so expect a milder length effect than on long news sentences; the full profile's
# buckets are finer for that reason. For a Tatoeba/Anki pair file use
# {py:func}`seqlib.data.parallel.load_tatoeba` in the data cell.

# %% [markdown]
# ## Exercises

# %% [markdown]
# :::{exercise} The brevity penalty
# :label: ex02-brevity
#
# Implement `my_brevity_penalty(c, r)`, {eq}`eq-bp`, for a corpus whose
# hypotheses have total length `c` and whose effective reference length is `r`.
# An empty output (`c = 0`) gets penalty 0. Use `math`, not `seqlib` or a BLEU
# library (`sacrebleu`, `nltk`); the check compares your function with
# {py:func}`seqlib.metrics.brevity_penalty`. Then answer: what is the largest BLEU
# a system can reach if every output is exactly half as long as its reference and
# all its n-grams are correct? (depth: implement; about 10 minutes)
# :::

# %% [markdown] tags=["solution"]
# ```{solution-start} ex02-brevity
# :class: dropdown
# ```

# %% tags=["solution"]
import math


def my_brevity_penalty(c: int, r: int) -> float:
    # BEGIN SOLUTION
    # HINT: no penalty if the output is longer; exp(1 - r/c) otherwise
    if c > r:
        return 1.0
    if c == 0:
        return 0.0
    return math.exp(1 - r / c)
    # END SOLUTION


# %% [markdown] tags=["solution"]
# With $c = r/2$ the penalty is $e^{1 - 2} = e^{-1} \approx 0.37$, so even perfect
# precisions give at most BLEU ≈ 36.8.
#
# ```{solution-end}
# ```

# %% exercise="ex02-brevity" forbid=["seqlib", "sacrebleu", "nltk"] tags=["check"]
from seqlib.exercises import check_close

for c, r in [(10, 8), (8, 8), (8, 10), (1, 30), (0, 5), (50, 100)]:
    try:
        got = my_brevity_penalty(c, r)
    except ZeroDivisionError as err:
        raise AssertionError(
            f"my_brevity_penalty(c={c}, r={r}): division by zero; "
            "an empty output (c = 0) must get penalty 0"
        ) from err
    rule = "no penalty when c > r" if c > r else "exp(1 - r/c) when c <= r"
    check_close(
        got,
        metrics.brevity_penalty(c, r),
        rtol=1e-6,
        atol=1e-9,
        name=f"my_brevity_penalty(c={c}, r={r}) ({rule})",
    )
check_close(
    my_brevity_penalty(50, 100),
    math.exp(-1),
    name="penalty of a half-length corpus",
)

# %% [markdown]
# :::{exercise} Clipped n-gram precision
# :label: ex02-clipping
#
# Implement `my_clipped_matches(hyp, refs, n)` that returns the pair `(matches,
# total)` of {eq}`eq-pn` for one sentence: `total` is the number of
# n-grams of `hyp`, and `matches` counts each of them at most as many times as
# it occurs in the single reference where it occurs most. Use only the Python
# standard library: not `seqlib`, `sacrebleu` or `nltk`; the check compares
# with {py:func}`seqlib.metrics.clipped_matches`. Why does BLEU clip by
# the *maximum over references* rather than the *sum*? (depth: implement; about
# 15 minutes)
# :::

# %% [markdown] tags=["solution"]
# ```{solution-start} ex02-clipping
# :class: dropdown
# ```

# %% tags=["solution"]
from collections import Counter


def my_clipped_matches(
    hyp: list[str], refs: list[list[str]], n: int
) -> tuple[int, int]:
    # BEGIN SOLUTION
    # HINT: Counter over n-gram tuples; clip each at its max count in one ref
    def grams(tokens):
        return Counter(
            tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)
        )

    counts = grams(hyp)
    best = Counter()
    for ref in refs:
        for gram, count in grams(ref).items():
            best[gram] = max(best[gram], count)
    return sum(min(count, best[gram]) for gram, count in counts.items()), sum(
        counts.values()
    )
    # END SOLUTION


# %% [markdown] tags=["solution"]
# Summing over references would let a hypothesis that repeats a word collect
# credit from every reference that contains it once: with four references, "the
# the the the" would score four unigram matches. The maximum keeps the credit to
# what *one* correct translation could contain.
#
# ```{solution-end}
# ```

# %% exercise="ex02-clipping" forbid=["seqlib", "sacrebleu", "nltk"] tags=["check"]
from seqlib.exercises import check_true

cases = [
    (
        "the the the the the the the".split(),
        ["the cat is on the mat".split(), "there is a cat on the mat".split()],
        1,
    ),
    ("the cat the cat".split(), ["the cat sat".split()], 2),
    ("a b c d".split(), ["a b".split(), "c d".split()], 2),
    ("x".split(), ["x y z".split()], 2),
]
for hyp_, refs_, n_ in cases:
    got = my_clipped_matches(hyp_, refs_, n_)
    want = metrics.clipped_matches(hyp_, refs_, n_)
    check_true(
        tuple(got) == tuple(want),
        f"my_clipped_matches({' '.join(hyp_)!r}, n={n_}): expected {want}, "
        f"got {got}",
    )
check_true(
    tuple(my_clipped_matches(*cases[0])) == (2, 7),
    "the 'the the the' example must give (2, 7)",
)

# %% [markdown]
# :::{exercise} Why beam search needs length normalisation
# :label: ex02-length-norm
#
# A decoder assigns every word probability at most $p_{\max} < 1$. Show that,
# ranked by total log-probability $\sum_t \log p(y_t \mid y_{<t}, x)$, a
# hypothesis of length $T$ can never beat the best one of length $T' < T$ if
# the latter's words all have probability at least $p_{\max}^{T/T'}$. What does
# dividing by $T^\alpha$ change, and what happens to BLEU's brevity penalty when
# beam search is left unnormalised? (depth: derive; about 15 minutes)
# :::

# %% [markdown] tags=["solution"]
# ```{solution-start} ex02-length-norm
# :class: dropdown
# ```

# %% [markdown] tags=["solution"]
# The long hypothesis has $\log p \le T \log p_{\max}$. The short one has
# $\log p \ge T' \cdot \tfrac{T}{T'} \log p_{\max} = T \log p_{\max}$, so it is at
# least as good: every extra word costs a negative term, and the search prefers to
# stop early. Dividing by $T^\alpha$ compares *average* log-probabilities per word
# ($\alpha = 1$) or something in between ($0 < \alpha < 1$), removing the bias
# towards stopping. Unnormalised beams produce short outputs, $c < r$, and the
# brevity penalty $e^{1 - r/c}$ then takes a large bite out of BLEU.
#
# ```{solution-end}
# ```

# %% [markdown]
# :::{exercise} Reverse the source
# :label: ex02-reverse
#
# Sutskever et al. {cite}`sutskever2014sequence` found that feeding the source sentence
# *reversed* to a unidirectional encoder made long sentences much easier. Retrain
# the plain model ({py:func}`seqlib.seq2seq.plain_seq2seq`) with
# `bidirectional=False`, once on the data as they are and once with every source
# reversed (build new {py:class}`seqlib.data.translation.Pair` objects
# with `src=p.src[::-1]`), and compare their BLEU-by-length tables
# ({py:func}`seqlib.metrics.bleu_by_length`). Explain the result with the distance, in
# encoder steps, between a source word and the output words that need it.
# (depth: experiment; about 25 minutes)
# :::

# %% [markdown] tags=["solution"]
# ```{solution-start} ex02-reverse
# :class: dropdown
# ```

# %% [markdown] tags=["solution"]
# ```python
# from seqlib.data.translation import Pair, TranslationData
# flip = lambda pairs: [Pair(p.src[::-1], p.tgt, p.refs) for p in pairs]
# reversed_data = TranslationData.from_splits(
#     flip(data.train), flip(data.valid), flip(data.test)
# )
# # train plain_seq2seq(..., bidirectional=False) on data and on
# # reversed_data as above, then metrics.bleu_by_length(...) for each
# ```
#
# This notebook does not run the experiment, so what follows is a prediction with
# its reasons, for your tables to confirm or refute. Reversal should help mostly on
# short and medium sentences: the first source words end up last in the encoder,
# right next to the first output words that need them, which gives short gradient
# paths at the start of the translation, where errors would otherwise propagate
# through the rest of the output. The *average* distance between a source word and
# its translation is unchanged, and in our verb-final target the verb of the first
# clause still has to travel far, so expect the long buckets to stay poor: reversal
# shifts the bottleneck, it does not remove it. That is the job of attention,
# chapter 3.
#
# ```{solution-end}
# ```
