import pytest
import torch
from torch import nn

from seqlib import train


def _regression(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1
    return x, y


def _step(model, batch):
    xb, yb = batch
    loss = torch.mean((model(xb) - yb) ** 2)
    return loss, {"mae": torch.mean(torch.abs(model(xb) - yb)).item()}


def test_fit_learns_and_records_history():
    x, y = _regression()
    train.seed_everything(0)
    model = nn.Linear(3, 1)
    hist = train.fit(
        model,
        train.minibatches(x, y, batch_size=32),
        _step,
        epochs=30,
        lr=0.05,
        device=torch.device("cpu"),
        evaluate=lambda m: {"val": torch.mean((m(x) - y) ** 2).item()},
    )
    assert len(hist.records) == 30
    assert hist["loss"][-1] < 1e-3 < hist["loss"][0]
    assert (
        hist.last("val") < 1e-3
        and "mae" in hist.records[0]
        and hist["seconds"][0] > 0
    )
    assert not model.training
    with pytest.raises(KeyError, match="no metric 'acc'"):
        hist["acc"]


def test_fit_is_reproducible_with_a_seed():
    x, y = _regression()
    weights = []
    for _ in range(2):
        train.seed_everything(3)
        model = nn.Linear(3, 1)
        train.fit(
            model,
            train.minibatches(x, y, batch_size=16, seed=1),
            _step,
            epochs=2,
            device=torch.device("cpu"),
        )
        weights.append(model.weight.detach().clone())
    assert torch.equal(weights[0], weights[1])


def test_scheduler_and_grad_clip_are_applied():
    x, y = _regression()
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    train.fit(
        model,
        train.minibatches(x, y, batch_size=128),
        _step,
        epochs=1,
        optimizer=opt,
        scheduler=sched,
        grad_clip=0.01,
        device=torch.device("cpu"),
    )
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**2)


def test_minibatches_cover_every_row_once_and_reshuffle():
    x = torch.arange(10)
    batches = train.minibatches(x, batch_size=4, seed=0)
    first = torch.cat([b for (b,) in batches()])
    second = torch.cat([b for (b,) in batches()])
    assert sorted(first.tolist()) == list(range(10)) and [
        len(b) for (b,) in batches()
    ] == [4, 4, 2]
    assert not torch.equal(first, second)
    ordered = torch.cat(
        [b for (b,) in train.minibatches(x, batch_size=3, shuffle=False)()]
    )
    assert torch.equal(ordered, x)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(
        ValueError, match=r"tensors\[1\]: expected first axis N=4"
    ):
        train.minibatches(torch.zeros(4), torch.zeros(5), batch_size=2)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        train.minibatches(torch.zeros(4), batch_size=0)
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        train.fit(nn.Linear(1, 1), [], _step, epochs=0)
    with pytest.raises(ValueError, match="produced no batch"):
        train.fit(
            nn.Linear(1, 1), [], _step, epochs=1, device=torch.device("cpu")
        )
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        train.seed_everything(-1)


def test_pick_device_honours_the_environment(monkeypatch):
    monkeypatch.setenv("SEQLIB_DEVICE", "cpu")
    assert train.pick_device() == torch.device("cpu")
    monkeypatch.delenv("SEQLIB_DEVICE")
    assert train.pick_device().type in {"cpu", "cuda", "mps"}


def test_to_device_walks_containers():
    batch = {
        "x": torch.zeros(2),
        "pair": (torch.ones(1), [torch.ones(1)]),
        "name": "a",
    }
    moved = train.to_device(batch, torch.device("cpu"))
    assert (
        moved["name"] == "a"
        and isinstance(moved["pair"], tuple)
        and isinstance(moved["pair"][1], list)
    )


def test_steps_per_epoch_cuts_an_endless_stream_and_on_epoch_sees_each_record():
    x, y = _regression()

    def endless():
        while True:
            yield x[:32], y[:32]

    seen = []
    hist = train.fit(
        nn.Linear(3, 1),
        endless,
        _step,
        epochs=3,
        steps_per_epoch=4,
        device=torch.device("cpu"),
        on_epoch=lambda epoch, record: seen.append((epoch, record["loss"])),
    )
    assert [e for e, _ in seen] == [0, 1, 2] and [r for _, r in seen] == hist[
        "loss"
    ]
    with pytest.raises(ValueError, match="steps_per_epoch must be >= 1"):
        train.fit(nn.Linear(3, 1), endless, _step, epochs=1, steps_per_epoch=0)


def test_bf16_autocast_and_compile_switches():
    x, y = _regression()
    seen = []

    def step(model, batch):
        out = model(batch[0])
        seen.append(out.dtype)
        return torch.mean((out.float() - batch[1]) ** 2)

    train.fit(
        nn.Linear(3, 1),
        train.minibatches(x, y, batch_size=128),
        step,
        epochs=1,
        precision="bf16",
        device=torch.device("cpu"),
    )
    assert seen == [
        torch.bfloat16,
        torch.bfloat16,
    ]  # the step ran under autocast
    model = nn.Linear(3, 1)
    hist = train.fit(
        model,
        train.minibatches(x, y, batch_size=128),
        _step,
        epochs=1,
        compile="eager",
        device=torch.device("cpu"),
    )
    assert len(hist.records) == 1 and isinstance(
        model, nn.Linear
    )  # the caller's model is the one trained
    with pytest.raises(ValueError, match="precision must be one of"):
        train.fit(
            model,
            train.minibatches(x, y, batch_size=128),
            _step,
            epochs=1,
            precision="fp16",
        )


def test_train_classifier_skips_weight_decay_where_the_model_says():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.token = nn.Parameter(torch.zeros(1, 4))
            self.table = nn.Parameter(torch.zeros(3, 4))
            self.head = nn.Linear(4, 2)

        def no_weight_decay(self):
            return {"token", "tab*"}

        def forward(self, images):
            return self.head(images.flatten(1)[:, :4] + self.token)

    from seqlib import layers

    model = Tiny()
    assert layers.no_weight_decay_names(model) == {
        "token",
        "table",
        "head.bias",
    }
    groups = layers.param_groups(model, 0.1)
    assert [len(g["params"]) for g in groups] == [1, 3] and groups[0][
        "params"
    ][0] is model.head.weight
    images, labels = torch.randn(40, 1, 2, 2), torch.randint(0, 2, (40,))
    hist = train.train_classifier(
        model,
        images,
        labels,
        epochs=2,
        batch_size=4,
        lr=1e-2,
        device=torch.device("cpu"),
    )
    assert (
        len(hist["acc"]) == 2
        and 0 <= train.accuracy(model, images, labels) <= 1
    )


def test_benchmark_times_the_repeats_after_warm_up():
    calls = []
    ticks = iter(range(100))
    timing = train.benchmark(
        lambda: calls.append(1),
        repeats=3,
        warmup=2,
        clock=lambda: float(next(ticks)),
    )
    assert len(calls) == 5 and timing.times == (1.0, 1.0, 1.0)
    assert (
        timing.median == timing.min == timing.max == 1.0
        and timing.spread == 0.0
    )
    slow = train.Timing((1.0, 2.0, 4.0))
    assert (
        slow.median == 2.0
        and slow.spread == pytest.approx(1.5)
        and "2000.00 ms" in str(slow)
    )
    with pytest.raises(ValueError, match="repeats >= 1"):
        train.benchmark(lambda: None, repeats=0)


def test_benchmark_interleaved_takes_turns():
    order = []
    ticks = iter(range(100))
    timings = train.benchmark_interleaved(
        {"a": lambda: order.append("a"), "b": lambda: order.append("b")},
        repeats=2,
        warmup=1,
        clock=lambda: float(next(ticks)),
    )
    # one warm-up round, then two timed rounds, a and b in turn
    assert order == ["a", "b"] * 3
    assert timings["a"].times == timings["b"].times == (1.0, 1.0)
    with pytest.raises(ValueError, match="at least one call"):
        train.benchmark_interleaved({})
