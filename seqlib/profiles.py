"""Run profiles: one place that holds every chapter's sizes, as typed, frozen
records.

``SEQLIB_PROFILE`` selects ``smoke`` (CPU, minutes, what CI runs and the book
shows) or ``full`` (a GPU and the real datasets). Each chapter asks for its
sizes with :func:`sizes` and never hard-codes them in the notebook, so a reader
switches profile by setting one environment variable.

Each chapter's sizes are an instance of a frozen dataclass (``Ch06Sizes``, ...)
built from the table :data:`SIZES`: fields are read as attributes
(``cfg.epochs``), a misspelt name is an ``AttributeError``, an override through
:meth:`Sizes.replace` must name an existing field with a value of its type, and
both profiles must define the same fields with the same types (checked when
this module is imported). The smoke and full values sit side by side in the
table, so a reader sees at a glance what changes with the profile.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

PROFILES = ("smoke", "full")
DEFAULT_PROFILE = "smoke"
ENV_VAR = "SEQLIB_PROFILE"

# chapter key -> profile -> sizes. Keys are "chNN"; values are plain
# numbers/strings.
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "ch06": {
        "smoke": dict(
            dataset="fashion_mnist",
            n_train=4000,
            n_small=1000,
            n_test=1000,
            epochs=4,
            small_epochs=10,
            batch_size=32,
            lr=3e-3,
            weight_decay=0.05,
            augment=False,
            patch=7,
            dim=64,
            depth=4,
            heads=4,
            mlp_ratio=2.0,
            dropout=0.0,
            cnn_widths=(16, 32, 64, 196),
            expected_minutes=3,
        ),
        "full": dict(
            dataset="cifar10",
            n_train=50000,
            n_small=5000,
            n_test=10000,
            epochs=100,
            small_epochs=400,
            batch_size=128,
            lr=1e-3,
            weight_decay=0.05,
            augment=True,
            patch=4,
            dim=192,
            depth=9,
            heads=12,
            mlp_ratio=2.0,
            dropout=0.1,
            cnn_widths=(80, 160, 320, 720),
            expected_minutes=60,
        ),
    },
    "ch07": {
        "smoke": dict(
            dataset="fashion_mnist",
            n_train=4000,
            n_test=1000,
            epochs=4,
            batch_size=32,
            lr=3e-3,
            weight_decay=0.05,
            augment=False,
            swin_dim=20,
            swin_depths=(2, 2, 2),
            swin_heads=(2, 4, 8),
            swin_patch=4,
            window=4,
            vit_dim=64,
            vit_depth=4,
            vit_heads=4,
            vit_patch=7,
            mlp_ratio=2.0,
            dropout=0.0,
            bench_window=7,
            bench_grids=(1, 2, 4, 6, 8),
            bench_dim=32,
            bench_heads=2,
            bench_batch=4,
            bench_repeats=5,
            expected_minutes=3,
        ),
        "full": dict(
            dataset="cifar10",
            n_train=50000,
            n_test=10000,
            epochs=100,
            batch_size=128,
            lr=1e-3,
            weight_decay=0.05,
            augment=True,
            swin_dim=36,
            swin_depths=(2, 2, 6, 2),
            swin_heads=(3, 6, 12, 24),
            swin_patch=2,
            window=4,
            vit_dim=192,
            vit_depth=9,
            vit_heads=12,
            vit_patch=4,
            mlp_ratio=2.0,
            dropout=0.1,
            bench_window=7,
            bench_grids=(1, 2, 4, 8, 12, 16),
            bench_dim=96,
            bench_heads=3,
            bench_batch=8,
            bench_repeats=10,
            expected_minutes=120,
        ),
    },
    "ch02": {
        "smoke": dict(
            corpus="generated",
            n_train=3000,
            n_valid=200,
            n_test=600,
            min_len=3,
            max_len=40,
            emb=32,
            hidden=40,
            batch_size=64,
            epochs=12,
            lr=5e-3,
            edges=(3, 10, 20, 30, 41),
            beam_size=4,
            n_beam=150,
            expected_minutes=1,
        ),
        # the generated-task sizes below are used only if corpus="generated" is
        # chosen
        "full": dict(
            corpus="multi30k",
            n_train=20000,
            n_valid=1000,
            n_test=2000,
            min_len=3,
            max_len=60,
            emb=256,
            hidden=256,
            batch_size=128,
            epochs=15,
            lr=1e-3,
            edges=(1, 10, 15, 20, 25, 80),
            beam_size=5,
            n_beam=1000,
            expected_minutes=20,
        ),
    },
    "ch03": {
        "smoke": dict(
            corpus="generated",
            n_train=3000,
            n_valid=200,
            n_test=600,
            min_len=3,
            max_len=40,
            emb=32,
            hidden=40,
            batch_size=64,
            epochs=3,
            lr=6e-3,
            edges=(3, 10, 20, 30, 41),
            scores=(
                "additive",
                "general",
                "dot",
                "scaled_dot",
                "cosine",
                "location",
            ),
            local_window=4,
            expected_minutes=2,
        ),
        "full": dict(
            corpus="multi30k",
            n_train=20000,
            n_valid=1000,
            n_test=2000,
            min_len=3,
            max_len=60,
            emb=256,
            hidden=256,
            batch_size=128,
            epochs=15,
            lr=1e-3,
            edges=(1, 10, 15, 20, 25, 80),
            scores=(
                "additive",
                "general",
                "dot",
                "scaled_dot",
                "cosine",
                "location",
            ),
            local_window=6,
            expected_minutes=90,
        ),
    },
    "ch04": {
        "smoke": dict(
            n_train=3000,
            n_test=300,
            canvas=48,
            min_size=14,
            max_size=20,
            max_objects=4,
            classes=(0, 1, 3, 5, 8, 9),
            channels=(16, 32, 64),
            emb=32,
            hidden=96,
            batch_size=64,
            lr=3e-3,
            epochs=10,
            hard_epochs=8,
            lam_ds=0.0,
            lam_entropy=0.01,
            beam_size=3,
            expected_minutes=3,
        ),
        "full": dict(
            n_train=30000,
            n_test=2000,
            canvas=64,
            min_size=18,
            max_size=26,
            max_objects=4,
            classes=tuple(range(10)),
            channels=(32, 64, 128),
            emb=64,
            hidden=256,
            batch_size=128,
            lr=2e-3,
            epochs=30,
            hard_epochs=30,
            lam_ds=0.0,
            lam_entropy=0.01,
            beam_size=5,
            expected_minutes=20,
        ),
    },
    "ch05": {
        "smoke": dict(
            corpus="generated",
            n_train=3000,
            n_valid=200,
            n_test=600,
            min_len=3,
            max_len=45,
            edges=(3, 10, 20, 30, 46),
            batch_size=64,
            rnn_emb=32,
            rnn_hidden=48,
            rnn_lr=6e-3,
            dim=64,
            heads=4,
            ff_dim=128,
            layers=2,
            dropout=0.1,
            lr=5e-3,
            epochs=4,
            beam_size=4,
            n_beam=50,
            timing_lengths=(16, 32, 64, 128, 256, 512),
            timing_batch=16,
            timing_repeats=3,
            expected_minutes=2.5,
        ),
        "full": dict(
            corpus="multi30k",
            n_train=0,
            n_valid=0,
            n_test=0,
            min_len=1,
            max_len=80,
            edges=(1, 10, 15, 20, 25, 80),
            batch_size=128,
            rnn_emb=256,
            rnn_hidden=256,
            rnn_lr=1e-3,
            dim=256,
            heads=8,
            ff_dim=1024,
            layers=3,
            dropout=0.1,
            lr=5e-4,
            epochs=20,
            beam_size=5,
            n_beam=1000,
            timing_lengths=(64, 128, 256, 512, 1024, 2048),
            timing_batch=32,
            timing_repeats=5,
            expected_minutes=60,
        ),
    },
    "ch01": {
        "smoke": dict(
            n_train=10000,
            n_test=2000,
            k=8,
            linear_epochs=30,
            deep_epochs=10,
            batch_size=128,
            lr=2e-3,
            linear_lr=1e-2,
            noise_std=0.5,
            overcomplete_width=1024,
            overcomplete_epochs=5,
            overcomplete_lr=1e-3,
            expected_minutes=1.5,
        ),
        "full": dict(
            n_train=60000,
            n_test=10000,
            k=8,
            linear_epochs=40,
            deep_epochs=40,
            batch_size=256,
            lr=1e-3,
            linear_lr=1e-2,
            noise_std=0.5,
            overcomplete_width=2048,
            overcomplete_epochs=20,
            overcomplete_lr=1e-3,
            expected_minutes=10,
        ),
    },
    "ch11": {
        "smoke": dict(
            dataset="fashion_mnist",
            n_train=3000,
            n_test=1000,
            image_size=28,
            patch_size=4,
            in_channels=1,
            dim=32,
            chunk_size=7,
            num_latents=7,
            num_layers=2,
            r=2,
            num_heads=2,
            ffn_expansion=4,
            attn_dropout=0.0,
            ffn_dropout=0.0,
            batch_size=100,
            epochs=3,
            lr=3e-3,
            weight_decay=1e-4,
            augment=False,
            vit_dim=32,
            vit_depth=4,
            vit_heads=2,
            vit_mlp_ratio=4.0,
            scaling_sizes=(28, 56, 84, 112),
            timing_batch=8,
            timing_repeats=2,
            chunk_sweep=(1, 7, 49),
            sweep_train=(49,),
            expected_minutes=3,
        ),
        "full": dict(
            dataset="cifar10",
            n_train=40000,
            n_test=10000,
            image_size=48,
            patch_size=4,
            in_channels=3,
            dim=64,
            chunk_size=8,
            num_latents=8,
            num_layers=4,
            r=2,
            num_heads=1,
            ffn_expansion=4,
            attn_dropout=0.2,
            ffn_dropout=0.2,
            batch_size=2048,
            epochs=30,
            lr=1e-4,
            weight_decay=1e-4,
            augment=True,
            vit_dim=64,
            vit_depth=7,
            vit_heads=4,
            vit_mlp_ratio=4.0,
            scaling_sizes=(48, 96, 144),
            timing_batch=8,
            timing_repeats=5,
            chunk_sweep=(4, 8, 16, 48, 144),
            sweep_train=(4, 16, 48),
            expected_minutes=60,
        ),
    },
    "ch10": {
        "smoke": dict(
            n_train=1200,
            n_test=400,
            frames=4,
            moving_frames=2,
            canvas=32,
            item=14,
            noise=0.01,
            classes=(0, 1, 7, 8),
            dims=(16, 32),
            strides=(4, 2),
            heads=(2, 2),
            block=4,
            grid=4,
            depth=1,
            epochs=3,
            batch_size=32,
            lr=3e-3,
            keras_channels=4,
            keras_lstm=8,
            keras_frame=16,
            bench_sizes=(8, 16, 32, 48, 64),
            bench_window=8,
            bench_dim=32,
            bench_heads=2,
            bench_repeats=3,
            expected_minutes=3,
        ),
        "full": dict(
            n_train=20000,
            n_test=2000,
            frames=8,
            moving_frames=3,
            canvas=64,
            item=28,
            noise=0.01,
            classes=(0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
            dims=(32, 64, 128),
            strides=(4, 2, 2),
            heads=(2, 4, 4),
            block=4,
            grid=4,
            depth=2,
            epochs=20,
            batch_size=64,
            lr=1e-3,
            keras_channels=8,
            keras_lstm=32,
            keras_frame=32,
            bench_sizes=(8, 16, 32, 64, 96, 128),
            bench_window=8,
            bench_dim=64,
            bench_heads=4,
            bench_repeats=10,
            expected_minutes=30,
        ),
    },
    "ch09": {
        "smoke": dict(
            n_train=600,
            n_test=400,
            frames=8,
            size=28,
            item_size=12,
            patch=7,
            tubelet=2,
            dim=32,
            depth=2,
            heads=4,
            mlp_ratio=2.0,
            epochs=3,
            batch_size=32,
            lr=3e-3,
            arrow_patch=14,
            arrow_epochs=5,
            vit_n_train=4000,
            vit_epochs=4,
            what_item_size=24,
            n_small=200,
            small_epochs=8,
            n_tiny=100,
            tiny_epochs=12,
            small_lr=2e-3,
            organ_epochs=0,
            organ_batch_size=32,
            organ_lr=1e-4,
            organ_weight_decay=1e-5,
            organ_dropout=0.1,
            expected_minutes=3,
        ),
        "full": dict(
            n_train=10000,
            n_test=2000,
            frames=8,
            size=28,
            item_size=12,
            patch=7,
            tubelet=2,
            dim=64,
            depth=4,
            heads=4,
            mlp_ratio=2.0,
            epochs=20,
            batch_size=64,
            lr=1e-3,
            arrow_patch=14,
            arrow_epochs=20,
            vit_n_train=60000,
            vit_epochs=10,
            what_item_size=24,
            n_small=200,
            small_epochs=30,
            n_tiny=100,
            tiny_epochs=60,
            small_lr=1e-3,
            organ_epochs=60,
            organ_batch_size=32,
            organ_lr=1e-4,
            organ_weight_decay=1e-5,
            organ_dropout=0.1,
            expected_minutes=20,
        ),
    },
    "ch08": {
        "smoke": dict(
            canvas=48,
            min_objects=1,
            max_objects=3,
            min_size=14,
            max_size=20,
            classes=(0, 1, 5, 7, 8, 9),
            n_train=2000,
            n_test=300,
            n_curve=100,
            pool=6000,
            num_queries=10,
            channels=(16, 32, 64),
            dim=64,
            heads=4,
            ff_dim=128,
            enc_layers=2,
            dec_layers=2,
            dropout=0.0,
            batch_size=16,
            lr=1e-3,
            steps=1000,
            eval_every=100,
            one_to_many_steps=300,
            expected_minutes=3,
        ),
        "full": dict(
            canvas=64,
            min_objects=1,
            max_objects=4,
            min_size=18,
            max_size=26,
            classes=tuple(range(10)),
            n_train=30000,
            n_test=2000,
            n_curve=500,
            pool=60000,
            num_queries=20,
            channels=(32, 64, 128),
            dim=128,
            heads=8,
            ff_dim=512,
            enc_layers=4,
            dec_layers=4,
            dropout=0.1,
            batch_size=64,
            lr=2e-4,
            steps=30000,
            eval_every=1000,
            one_to_many_steps=5000,
            expected_minutes=40,
        ),
    },
}


def current_profile() -> str:
    """Return the active profile name from ``SEQLIB_PROFILE`` (default
    ``smoke``).

    Raises:
        ValueError: if the variable holds anything but ``smoke`` or ``full``.
    """
    value = (
        os.environ.get(ENV_VAR, DEFAULT_PROFILE).strip().lower()
        or DEFAULT_PROFILE
    )
    if value not in PROFILES:
        raise ValueError(
            f"{ENV_VAR} must be one of {PROFILES}, got "
            f"{os.environ.get(ENV_VAR)!r}. Unset it for the default "
            f"({DEFAULT_PROFILE!r})."
        )
    return value


DRY_RUN_ENV = "SEQLIB_DRY_RUN"
"""Set to ``1`` for a dry run: the profile's real model sizes and data shapes,
but only a handful of steps per training loop (see :func:`dry_run`)."""
DRY_RUN_CAP = 256
"""How many examples a dry run keeps of any dataset or evaluation set."""


def dry_run() -> bool:
    """Whether this is a dry run (``SEQLIB_DRY_RUN=1``).

    A dry run executes a chapter top to bottom with the current profile's
    models at their real sizes and its data pipelines' real shapes and dtypes,
    but trains for :data:`seqlib.train.DRY_RUN_EPOCHS` epochs of
    :data:`seqlib.train.DRY_RUN_STEPS` steps, keeps at most
    :data:`DRY_RUN_CAP` examples of a dataset, never downloads (missing
    datasets are replaced by generated stand-ins of the same format), and
    reports claims that need real training as "not evaluated in a dry run"
    (:func:`seqlib.claims.check`). ``SEQLIB_PROFILE=full SEQLIB_DRY_RUN=1``
    checks on a CPU, in minutes, that the full profile will run on a GPU.

    Raises:
        ValueError: if ``SEQLIB_DRY_RUN`` is set to anything but ``0``, ``1``
            or the empty string.
    """
    value = os.environ.get(DRY_RUN_ENV, "").strip()
    if value not in ("", "0", "1"):
        raise ValueError(
            f"{DRY_RUN_ENV} must be 0 or 1, got {value!r}. Unset it for a "
            "normal run."
        )
    return value == "1"


def dry_run_cap(n: int, cap: int = DRY_RUN_CAP) -> int:
    """``n``, or at most ``cap`` in a dry run: how many examples, batches or
    repeats a chapter uses (``n_test = profiles.dry_run_cap(cfg.n_test)``)."""
    return min(n, cap) if dry_run() else n


@dataclasses.dataclass(frozen=True)
class Target:
    """What a chapter's full profile aims at on a GPU: a headline metric, the
    value it should reach and the time it should take.

    ``minutes`` is the wall time the headline model's training is expected to
    need on one current data-centre GPU (an A100, H100 or H200); the whole
    chapter's time is its sizes' ``expected_minutes``. ``basis`` says where
    the number comes from: an estimate until a full run has been recorded on
    the results page by ``scripts/full_run.py``.
    """

    metric: str
    value: float
    minutes: float
    basis: str
    source: str


TARGETS: dict[str, Target] = {
    "ch06": Target(
        metric="ViT test accuracy on CIFAR-10 (from scratch, augmented)",
        value=0.80,
        minutes=20,
        basis="estimate, not yet measured",
        source="80-90 % reported for small from-scratch ViTs on CIFAR-10",
    ),
    "ch07": Target(
        metric="Swin test accuracy on CIFAR-10 (from scratch, augmented)",
        value=0.80,
        minutes=40,
        basis="estimate, not yet measured",
        source="80-90 % reported for small from-scratch vision Transformers",
    ),
    "ch09": Target(
        metric="ViViT test accuracy on OrganMNIST3D",
        value=0.77,
        minutes=5,
        basis="estimate, not yet measured",
        source="the course report this chapter follows: 77 %",
    ),
    "ch11": Target(
        metric="TLB test accuracy on CIFAR-10 after 30 epochs",
        value=0.489,
        minutes=11.5,
        basis="a requirement: 1/50 of the Keras example's 9.6 hours",
        source="the Keras example reports 48.9 % after 30 epochs",
    ),
}
"""Chapter key -> its full-profile :class:`Target` (chapters with a headline
accuracy on a real dataset)."""

METRICS_ENV = "SEQLIB_METRICS_FILE"


def report_target(chapter: str, value: float) -> bool:
    """Print a full run's headline metric against the chapter's target, and
    record it for ``scripts/full_run.py``.

    With ``SEQLIB_METRICS_FILE`` set, one JSON line (chapter, metric, value,
    target, met) is appended to that file. A missed target is reported, not
    raised: a full run is a measurement.

    Returns:
        Whether ``value`` reached the target.

    Raises:
        ValueError: for a chapter without a target.
    """
    if chapter not in TARGETS:
        raise ValueError(
            f"no full-profile target for {chapter!r}; chapters with one: "
            f"{sorted(TARGETS)}"
        )
    target = TARGETS[chapter]
    met = float(value) >= target.value
    print(
        f"target: {target.metric} >= {target.value:.1%}; measured "
        f"{float(value):.1%} ({'met' if met else 'missed'})"
    )
    path = os.environ.get(METRICS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            record = dict(
                chapter=chapter,
                metric=target.metric,
                value=float(value),
                target=target.value,
                met=met,
            )
            f.write(json.dumps(record) + "\n")
    return met


class Sizes:
    """Base of the per-chapter size records; a frozen dataclass with typed
    fields."""

    def as_dict(self) -> dict[str, Any]:
        """The fields and their values, in table order."""
        return {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self)
        }

    def replace(self, **overrides: Any) -> "Sizes":
        """A copy with some fields changed (for an exercise or a quick
        experiment).

        Raises:
            TypeError: for a name that is not a field, or a value of the wrong
                type.
        """
        fields = {f.name: f.type for f in dataclasses.fields(self)}
        for name, value in overrides.items():
            if name not in fields:
                raise TypeError(
                    f"{type(self).__name__} has no field {name!r}; fields: "
                    f"{sorted(fields)}"
                )
            _check_type(f"{type(self).__name__}.{name}", value, fields[name])
        return dataclasses.replace(self, **overrides)

    def __str__(self) -> str:
        """The fields wrapped to lines of at most 76 characters (what a
        chapter prints; the book's output column holds about 78)."""
        import textwrap

        # a value's own spaces are protected, so a tuple never breaks across
        # lines
        items = ", ".join(
            f"{name}={value!r}".replace(" ", "\0")
            for name, value in self.as_dict().items()
        )
        body = textwrap.fill(
            items,
            76,
            initial_indent="    ",
            subsequent_indent="    ",
            break_long_words=False,
        )
        return f"{type(self).__name__}(\n" + body.replace("\0", " ") + ")"

    def __getitem__(self, name: str) -> Any:
        raise TypeError(
            f"sizes are read as attributes: use .{name}, not [{name!r}]"
        )


def _type_of(value: Any) -> type:
    if isinstance(value, bool):
        return bool
    if isinstance(value, (int, float)):
        return float if isinstance(value, float) else int
    return type(value)


def _check_type(what: str, value: Any, expected: type) -> None:
    got = _type_of(value)
    if got is expected or (expected is float and got is int):
        return
    raise TypeError(
        f"{what}: expected a value of type {expected.__name__}, got {value!r} "
        f"({got.__name__})"
    )


def _record_type(chapter: str, by_profile: dict[str, dict[str, Any]]) -> type:
    """The frozen dataclass of one chapter, its field types read from the table
    and checked across profiles."""
    if set(by_profile) != set(PROFILES):
        raise ValueError(
            f"{chapter}: expected sizes for the profiles {PROFILES}, got "
            f"{sorted(by_profile)}"
        )
    smoke, full = by_profile["smoke"], by_profile["full"]
    if list(smoke) != list(full):
        raise ValueError(
            f"{chapter}: smoke and full must list the same fields in the same "
            f"order; only in smoke: {sorted(set(smoke) - set(full))}, only in "
            f"full: {sorted(set(full) - set(smoke))}"
        )
    types = {}
    for name in smoke:
        a, b = _type_of(smoke[name]), _type_of(full[name])
        types[name] = float if {a, b} == {int, float} else a
        for profile, value in (("smoke", smoke[name]), ("full", full[name])):
            _check_type(f"{chapter} {profile} {name}", value, types[name])
    cls = dataclasses.make_dataclass(
        f"{chapter.capitalize()}Sizes",
        list(types.items()),
        bases=(Sizes,),
        frozen=True,
    )
    cls.__doc__ = f"The sizes of chapter {chapter[2:]} (see :data:`SIZES`)."
    return cls


RECORDS: dict[str, type] = {
    chapter: _record_type(chapter, table) for chapter, table in SIZES.items()
}
"""Chapter key -> its frozen size dataclass."""


def sizes(chapter: str, profile: str | None = None) -> Sizes:
    """Return the sizes of ``chapter`` (e.g. ``"ch01"``) for a profile, a
    frozen dataclass.

    Args:
        chapter: chapter key, ``"chNN"``.
        profile: ``"smoke"`` or ``"full"``; defaults to
            :func:`current_profile`.

    Raises:
        ValueError: for an unknown chapter or profile.
    """
    profile = current_profile() if profile is None else profile
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if chapter not in SIZES:
        raise ValueError(
            f"unknown chapter {chapter!r}; expected one of {sorted(SIZES)}"
        )
    values = {
        name: float(v)
        if RECORDS[chapter].__dataclass_fields__[name].type is float
        else v
        for name, v in SIZES[chapter][profile].items()
    }
    return RECORDS[chapter](**values)
