"""The one training loop of the book, its seeds and devices, and the one timing
helper.

The loop, :func:`fit`, is deliberately plain: a chapter supplies
``step(model, batch)`` that returns the loss (or ``(loss, metrics)``), and gets
back a :class:`History` of per-epoch means. Its hooks cover what chapters vary:
the step itself, an evaluation after each epoch, a learning-rate schedule,
gradient clipping, a callback per epoch, epochs of a fixed number of steps
(for an endless stream of batches), and the full profile's switches, bfloat16
autocast and ``torch.compile``. :func:`train_classifier` is the
image-classifier recipe of chapters 6, 7, 9 and 11 on top of it. A tqdm bar
shows progress in a terminal or notebook and stays quiet in CI (``CI`` set) or
when ``SEQLIB_QUIET=1``.

:func:`benchmark` times every measurement in the book the same way: warm-up
calls, CUDA synchronisation around each timed call, and the median with the
spread of the repeats.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seqlib import profiles
from seqlib.layers import param_groups
from seqlib.shapes import expect_shape

StepFn = Callable[
    [nn.Module, Any], "torch.Tensor | tuple[torch.Tensor, dict[str, float]]"
]


SEED_ENV = "SEQLIB_SEED"


def base_seed() -> int:
    """The run's seed knob: ``SEQLIB_SEED`` (default 0), a non-negative
    integer.

    Every random choice of a chapter (data generation, initialisation,
    batching, sampling) derives its seed from this one number through
    :func:`seed_for`.
    """
    raw = os.environ.get(SEED_ENV, "0").strip() or "0"
    try:
        seed = int(raw)
    except ValueError:
        raise ValueError(
            f"{SEED_ENV} must be a non-negative integer, got {raw!r}"
        ) from None
    if seed < 0:
        raise ValueError(
            f"{SEED_ENV} must be a non-negative integer, got {seed}"
        )
    return seed


def seed_for(stream: int = 0) -> int:
    """The seed of random stream ``stream`` (0-999) under the run's
    ``SEQLIB_SEED``.

    Streams keep independent choices apart (the training data, the test data,
    each model's initialisation and batch order); ``SEQLIB_SEED`` moves all of
    them at once. The seed is ``stream + 1000 * SEQLIB_SEED``, so with the
    default ``SEQLIB_SEED=0`` stream ``k`` is seeded with ``k``.
    """
    if not isinstance(stream, int) or not 0 <= stream < 1000:
        raise ValueError(f"stream must be an int in [0, 1000), got {stream!r}")
    return stream + 1000 * base_seed()


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) with ``seed``."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(prefer: str | None = None) -> torch.device:
    """Return ``cuda`` if available, else ``mps``, else ``cpu``.

    ``prefer`` (or the environment variable ``SEQLIB_DEVICE``) forces one.
    """
    prefer = prefer or os.environ.get("SEQLIB_DEVICE")
    if prefer:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if (
        getattr(torch.backends, "mps", None) is not None
        and torch.backends.mps.is_available()
    ):
        return torch.device("mps")
    return torch.device("cpu")


def quiet() -> bool:
    """True when progress bars should stay hidden (CI or
    ``SEQLIB_QUIET=1``)."""
    return bool(os.environ.get("CI")) or os.environ.get(
        "SEQLIB_QUIET", "0"
    ) not in ("", "0")


@dataclass
class History:
    """Per-epoch means of the loss and of every metric a step reported."""

    records: list[dict[str, float]] = field(default_factory=list)

    def __getitem__(self, key: str) -> list[float]:
        if not self.records or key not in self.records[-1]:
            known = sorted(self.records[-1]) if self.records else []
            raise KeyError(f"no metric {key!r} in history; known: {known}")
        return [r[key] for r in self.records]

    def last(self, key: str) -> float:
        """The value of ``key`` after the final epoch."""
        return self[key][-1]


def to_device(batch: Any, device: torch.device) -> Any:
    """Move a tensor, or a tuple/list/dict of tensors, to ``device``.

    A CPU tensor bound for a GPU is pinned first, so that its copy is
    asynchronous (``non_blocking``) and overlaps the previous step's work.
    """
    if isinstance(batch, torch.Tensor):
        if device.type == "cuda" and batch.device.type == "cpu":
            batch = batch.pin_memory()
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def _progress(iterable: Iterable[int], desc: str) -> Iterable[int]:
    """Wrap ``iterable`` in a tqdm bar unless :func:`quiet`; tqdm is imported
    only when shown."""
    if quiet():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False)


def _split(out: Any) -> tuple[torch.Tensor, dict[str, float]]:
    if isinstance(out, tuple):
        loss, metrics = out
        return loss, dict(metrics)
    return out, {}


PRECISIONS = ("fp32", "bf16")
PRECISION_ENV = "SEQLIB_PRECISION"
COMPILE_ENV = "SEQLIB_COMPILE"
DRY_RUN_EPOCHS = 2
"""Epochs :func:`fit` runs at most in a dry run
(:func:`seqlib.profiles.dry_run`)."""
DRY_RUN_STEPS = 2
"""Steps per epoch :func:`fit` runs at most in a dry run."""


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """The precision :func:`fit` trains in: ``"fp32"`` or ``"bf16"``.

    An explicit ``precision`` wins. Otherwise ``SEQLIB_PRECISION`` decides:
    ``fp32``, ``bf16``, or ``auto`` (the default), which is bf16 autocast on a
    CUDA GPU that supports bfloat16 and fp32 everywhere else. bf16 keeps
    fp32's exponent range, so it needs no loss scaling; autocast keeps
    softmax, norms and losses in fp32, and the weights and optimizer state stay
    fp32. Set ``SEQLIB_PRECISION=fp32`` to compare.

    Raises:
        ValueError: for any other value.
    """
    choice = precision or os.environ.get(PRECISION_ENV, "auto").strip()
    choice = choice.lower() or "auto"
    if choice == "auto":
        return (
            "bf16"
            if device.type == "cuda" and torch.cuda.is_bf16_supported()
            else "fp32"
        )
    if choice not in PRECISIONS:
        raise ValueError(
            f"precision must be one of {('auto', *PRECISIONS)}, got "
            f"{choice!r} (from the argument or {PRECISION_ENV})"
        )
    return choice


def resolve_compile(
    compile: bool | str | None, device: torch.device
) -> str | None:
    """The ``torch.compile`` backend :func:`fit` uses, or None for eager.

    An explicit ``compile`` wins (True means ``"inductor"``, False eager, a
    string names the backend). ``None`` reads ``SEQLIB_COMPILE``: ``0`` (the
    default: eager), ``1``, a backend name, or ``auto``. ``auto`` means
    inductor on a CUDA GPU outside a dry run, where compiling (a minute) pays
    off over a long run; eager on a CPU, where it rarely does, and in a dry
    run, which takes a few steps only. So only models that ask for it are
    compiled: callers pass ``"auto"`` (:func:`train_classifier` does) or set
    ``SEQLIB_COMPILE``.
    """
    if compile is None:
        compile = os.environ.get(COMPILE_ENV, "0").strip().lower() or "0"
    if compile in (False, "0", "false", "off"):
        return None
    if compile in (True, "1", "true", "on"):
        return "inductor"
    if compile == "auto":
        use = device.type == "cuda" and not profiles.dry_run()
        return "inductor" if use else None
    if not isinstance(compile, str):
        raise TypeError(
            f"compile must be a bool, a backend name or None, got "
            f"{type(compile).__name__}"
        )
    return compile


def fit(
    model: nn.Module,
    batches: Callable[[], Iterable[Any]] | Iterable[Any],
    step: StepFn,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    device: torch.device | None = None,
    grad_clip: float | None = None,
    scheduler: Any = None,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    steps_per_epoch: int | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    precision: str | None = None,
    compile: bool | str | None = None,
    desc: str = "train",
) -> History:
    """Train ``model`` for ``epochs`` and return the per-epoch history.

    Args:
        model: the module to train (moved to ``device``).
        batches: an iterable of batches (a DataLoader), or a function returning
            a fresh iterable each epoch.
        step: ``step(model, batch)`` returns the loss tensor, or
            ``(loss, metrics)`` with float metrics; the batch is already on
            ``device``.
        epochs: number of passes over ``batches``.
        optimizer: defaults to Adam with learning rate ``lr``.
        device: defaults to :func:`pick_device`.
        grad_clip: clip the global gradient norm to this value (RNNs and DETR
            need it).
        scheduler: a learning-rate scheduler stepped after every optimizer
            step.
        evaluate: called after each epoch in eval mode under ``no_grad``; its
            dict is added to the record (e.g. validation loss or accuracy).
        steps_per_epoch: end an epoch after this many steps (for a function
            that yields batches without end, or to evaluate every n steps).
        on_epoch: called as ``on_epoch(epoch, record)`` after each epoch
            (progress reports, checkpoints, early looks at a figure).
        precision: ``"fp32"``, or ``"bf16"`` for bfloat16 autocast of the step;
            None: :func:`resolve_precision` (bf16 on a CUDA GPU, fp32 on a
            CPU, ``SEQLIB_PRECISION`` to choose).
        compile: pass the model through ``torch.compile`` for the steps; a
            string names the backend (``"inductor"``, or ``"eager"`` to test
            the wiring), ``"auto"`` compiles on a GPU only, None reads
            ``SEQLIB_COMPILE`` (:func:`resolve_compile`).
        desc: label of the progress bar.

    Returns:
        A :class:`History` with ``loss``, each step metric, each evaluation
        metric and ``seconds`` (wall time of the epoch) per epoch.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if steps_per_epoch is not None and steps_per_epoch < 1:
        raise ValueError(
            f"steps_per_epoch must be >= 1 or None, got {steps_per_epoch}"
        )
    if profiles.dry_run():  # real sizes, a handful of steps
        epochs = min(epochs, DRY_RUN_EPOCHS)
        steps_per_epoch = min(steps_per_epoch or DRY_RUN_STEPS, DRY_RUN_STEPS)
    device = device or pick_device()
    precision = resolve_precision(precision, device)
    model.to(device)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    backend = resolve_compile(compile, device)
    runner = (
        model if backend is None else torch.compile(model, backend=backend)
    )

    def autocast():
        if precision == "bf16":
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    history = History()
    for epoch in _progress(range(epochs), desc):
        start, sums, count = time.perf_counter(), {}, 0
        model.train()
        epoch_batches = batches() if callable(batches) else batches
        if steps_per_epoch is not None:
            epoch_batches = itertools.islice(epoch_batches, steps_per_epoch)
        for batch in epoch_batches:
            with autocast():
                loss, metrics = _split(step(runner, to_device(batch, device)))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            for k, v in {"loss": loss.item(), **metrics}.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            count += 1
        if count == 0:
            raise ValueError(
                "batches produced no batch; check the dataset size and batch "
                "size"
            )
        record = {k: v / count for k, v in sums.items()}
        if evaluate is not None:
            model.eval()
            with torch.no_grad():
                record.update(evaluate(model))
        record["seconds"] = time.perf_counter() - start
        history.records.append(record)
        if on_epoch is not None:
            on_epoch(epoch, record)
    model.eval()
    return history


def minibatches(
    *tensors: torch.Tensor,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
) -> Callable[[], Iterable[tuple[torch.Tensor, ...]]]:
    """Return a function that yields the tensors in (shuffled) minibatches.

    Each call draws a new order from a generator seeded once with ``seed``, so
    a training run is reproducible and each epoch sees a different order. All
    tensors must share their first axis N. Pass the result to :func:`fit`.
    """
    if not tensors:
        raise ValueError("minibatches needs at least one tensor")
    n = tensors[0].shape[0]
    for i, t in enumerate(tensors):
        if t.shape[0] != n:
            raise ValueError(
                f"tensors[{i}]: expected first axis N={n}, got shape "
                f"{tuple(t.shape)}"
            )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    generator = torch.Generator().manual_seed(seed)

    def epoch() -> Iterable[tuple[torch.Tensor, ...]]:
        order = (
            torch.randperm(n, generator=generator)
            if shuffle
            else torch.arange(n)
        )
        for idx in order.split(batch_size):
            yield tuple(t[idx] for t in tensors)

    return epoch


# --- the image-classifier recipe (chapters 6, 7, 9 and 11) -------------------
def train_classifier(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float = 0.05,
    seed: int = 0,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    device: torch.device | None = None,
    desc: str = "train",
    **fit_kwargs,
) -> History:
    """Train with AdamW, a one-cycle schedule (10 % warm-up, then cosine) and
    cross-entropy.

    Transformers trained from scratch need the warm-up and the weight decay;
    the CNN gets the same recipe, so the comparison is of architectures, not
    recipes. Weight decay skips what
    :func:`seqlib.layers.no_weight_decay_names` names (biases, norms, and what
    the model's ``no_weight_decay()`` lists: class tokens, position tables,
    relative-position bias tables).

    Args:
        model: maps (B, C, H, W) to logits (B, classes).
        images: (N, C, H, W); labels: (N,) int64.
        augment: applied to each training batch, on the training device
            (e.g. :func:`seqlib.data.cifar10.random_crop_flip`).
        fit_kwargs: passed on to :func:`fit` (``precision``, ``compile``,
            ``evaluate``, ...).

    Returns:
        The :class:`History` (per-epoch ``loss``, ``acc`` and ``seconds``).
    """
    expect_shape(labels, (images.shape[0],), name="labels")
    seed_everything(seed)
    device = device or pick_device()
    if device.type == "cuda":  # the whole set on the GPU once: no copy a step
        images, labels = images.to(device), labels.to(device)
    fit_kwargs.setdefault("compile", "auto")  # compiled on a GPU
    steps = epochs * -(-len(images) // batch_size)
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=steps, pct_start=0.1
    )

    def step(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]):
        x, y = batch
        logits = m(augment(x) if augment is not None else x)  # (B, classes)
        return F.cross_entropy(logits, y), {
            "acc": (logits.argmax(-1) == y).float().mean().item()
        }

    return fit(
        model,
        minibatches(images, labels, batch_size=batch_size, seed=seed),
        step,
        epochs=epochs,
        optimizer=optimizer,
        scheduler=scheduler,
        device=device,
        desc=desc,
        **fit_kwargs,
    )


@torch.no_grad()
def accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int = 500,
) -> float:
    """Top-1 accuracy of ``model`` on (N, C, H, W) images, evaluated in batches
    in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    correct = sum(
        int((model(x.to(device)).argmax(-1).cpu() == y).sum())
        for x, y in zip(images.split(batch_size), labels.split(batch_size))
    )
    return correct / len(labels)


# --- timing ------------------------------------------------------------------
@dataclass(frozen=True)
class Timing:
    """Seconds of the timed repeats of one call: median, spread and all of
    them."""

    times: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def max(self) -> float:
        return max(self.times)

    @property
    def spread(self) -> float:
        """``(max - min) / median``: how much the repeats disagree."""
        return (self.max - self.min) / self.median if self.median > 0 else 0.0

    def __str__(self) -> str:
        return (
            f"{1e3 * self.median:.2f} ms (median of {len(self.times)}, "
            f"{1e3 * self.min:.2f}-{1e3 * self.max:.2f})"
        )


def benchmark(
    fn: Callable[[], Any],
    *,
    repeats: int = 5,
    warmup: int = 1,
    device: torch.device | str | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeats`` timed ones.

    On a CUDA ``device`` the GPU is synchronised before and after each timed
    call, so the time is that of the work, not of queuing it. ``clock`` may be
    ``time.process_time`` for CPU time (meaningful with one CPU thread, where
    it ignores whatever else the machine runs). Report ``Timing.median`` and
    the spread; ``Timing.min`` is the least disturbed repeat on a shared
    machine. To compare calls, time them together with
    :func:`benchmark_interleaved`.
    """
    return benchmark_interleaved(
        {"fn": fn},
        repeats=repeats,
        warmup=warmup,
        device=device,
        clock=clock,
    )["fn"]


def benchmark_interleaved(
    fns: dict[str, Callable[[], Any]],
    *,
    repeats: int = 5,
    warmup: int = 1,
    device: torch.device | str | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Timing]:
    """Time several calls in turn, one repeat of each per round.

    Timed one after the other, two calls see different machines when the
    load changes between them (another process starts, the CPU's clock
    moves); taking turns gives each call the same share of every disturbance,
    so their ratio is fair. ``warmup``, ``device`` and ``clock`` as in
    :func:`benchmark`; returns each name's :class:`Timing`.
    """
    if repeats < 1 or warmup < 0 or not fns:
        raise ValueError(
            "need at least one call, repeats >= 1 and warmup >= 0, got "
            f"{len(fns)} call(s), repeats={repeats}, warmup={warmup}"
        )
    cuda = device is not None and torch.device(device).type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            start = clock()
            fn()
            sync()
            times[name].append(clock() - start)
    return {name: Timing(tuple(t)) for name, t in times.items()}
