"""One small training loop for every chapter: seeding, device choice, history.

The loop is deliberately plain: a chapter supplies ``step(model, batch)`` that
returns the loss (or ``(loss, metrics)``), and gets back a :class:`History` of
per-epoch means. A tqdm bar shows progress in a terminal or notebook and stays
quiet in CI (``CI`` set) or when ``SEQLIB_QUIET=1``.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

StepFn = Callable[[nn.Module, Any], "torch.Tensor | tuple[torch.Tensor, dict[str, float]]"]


SEED_ENV = "SEQLIB_SEED"


def base_seed() -> int:
    """The run's seed knob: ``SEQLIB_SEED`` (default 0), a non-negative integer.

    Every random choice of a chapter (data generation, initialisation, batching,
    sampling) derives its seed from this one number through :func:`seed_for`.
    """
    raw = os.environ.get(SEED_ENV, "0").strip() or "0"
    try:
        seed = int(raw)
    except ValueError:
        raise ValueError(f"{SEED_ENV} must be a non-negative integer, got {raw!r}") from None
    if seed < 0:
        raise ValueError(f"{SEED_ENV} must be a non-negative integer, got {seed}")
    return seed


def seed_for(stream: int = 0) -> int:
    """The seed of random stream ``stream`` (0-999) under the run's ``SEQLIB_SEED``.

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
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def quiet() -> bool:
    """True when progress bars should stay hidden (CI or ``SEQLIB_QUIET=1``)."""
    return bool(os.environ.get("CI")) or os.environ.get("SEQLIB_QUIET", "0") not in ("", "0")


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
    """Move a tensor, or a tuple/list/dict of tensors, to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def _progress(iterable: Iterable[int], desc: str) -> Iterable[int]:
    """Wrap ``iterable`` in a tqdm bar unless :func:`quiet`; tqdm is imported only when shown."""
    if quiet():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False)


def _split(out: Any) -> tuple[torch.Tensor, dict[str, float]]:
    if isinstance(out, tuple):
        loss, metrics = out
        return loss, dict(metrics)
    return out, {}


def fit(model: nn.Module, batches: Callable[[], Iterable[Any]] | Iterable[Any], step: StepFn, *,
        epochs: int, optimizer: torch.optim.Optimizer | None = None, lr: float = 1e-3,
        device: torch.device | None = None, grad_clip: float | None = None,
        scheduler: Any = None, evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
        desc: str = "train") -> History:
    """Train ``model`` for ``epochs`` and return the per-epoch history.

    Args:
        model: the module to train (moved to ``device``).
        batches: an iterable of batches (a DataLoader), or a function returning a
            fresh iterable each epoch.
        step: ``step(model, batch)`` returns the loss tensor, or ``(loss, metrics)``
            with float metrics; the batch is already on ``device``.
        epochs: number of passes over ``batches``.
        optimizer: defaults to Adam with learning rate ``lr``.
        device: defaults to :func:`pick_device`.
        grad_clip: clip the global gradient norm to this value (RNNs need it).
        scheduler: a learning-rate scheduler stepped after every optimizer step.
        evaluate: called after each epoch in eval mode under ``no_grad``; its dict
            is added to the record (e.g. validation loss or accuracy).
        desc: label of the progress bar.

    Returns:
        A :class:`History` with ``loss``, each step metric, each evaluation
        metric and ``seconds`` (wall time of the epoch) per epoch.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    device = device or pick_device()
    model.to(device)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    history = History()
    for epoch in _progress(range(epochs), desc):
        start, sums, count = time.perf_counter(), {}, 0
        model.train()
        for batch in (batches() if callable(batches) else batches):
            loss, metrics = _split(step(model, to_device(batch, device)))
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
            raise ValueError("batches produced no batch; check the dataset size and batch size")
        record = {k: v / count for k, v in sums.items()}
        if evaluate is not None:
            model.eval()
            with torch.no_grad():
                record.update(evaluate(model))
        record["seconds"] = time.perf_counter() - start
        history.records.append(record)
    model.eval()
    return history


def minibatches(*tensors: torch.Tensor, batch_size: int, shuffle: bool = True,
                seed: int = 0) -> Callable[[], Iterable[tuple[torch.Tensor, ...]]]:
    """Return a function that yields the tensors in (shuffled) minibatches.

    Each call draws a new order from a generator seeded once with ``seed``, so a
    training run is reproducible and each epoch sees a different order. All
    tensors must share their first axis N. Pass the result to :func:`fit`.
    """
    if not tensors:
        raise ValueError("minibatches needs at least one tensor")
    n = tensors[0].shape[0]
    for i, t in enumerate(tensors):
        if t.shape[0] != n:
            raise ValueError(f"tensors[{i}]: expected first axis N={n}, got shape {tuple(t.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    generator = torch.Generator().manual_seed(seed)

    def epoch() -> Iterable[tuple[torch.Tensor, ...]]:
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for idx in order.split(batch_size):
            yield tuple(t[idx] for t in tensors)

    return epoch
