"""Shared pytest fixtures: keep every test on one CPU thread (the CI machine has two cores)."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Run the whole session with ``torch.set_num_threads(1)``, restoring the old value after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# Notebooks under tests/ are fixtures built for the exercise tooling, not chapters:
# keep nbval from collecting them.
collect_ignore_glob = ["fixtures/*"]


@pytest.fixture
def no_network(monkeypatch):
    """Make any download attempt fail the test (dry runs and offline loaders
    must not reach the network)."""
    import urllib.request

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to reach the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
