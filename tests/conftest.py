"""Shared fixtures: a private data cache per test, small trial configs, one thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gan_hpc.config import TrialConfig
from tests.helpers import small_frf_config


@pytest.fixture(autouse=True)
def private_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own dataset cache, never the user's ~/.cache."""
    cache = tmp_path_factory.mktemp("gan_hpc_cache")
    monkeypatch.setenv("GAN_HPC_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def trial_config() -> TrialConfig:
    """A 16-unit conditional MLP GAN trained for 20 steps on CPU."""
    return small_frf_config()


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread and one OpenMP/BLAS thread for a module's tests.

    Tiny convolutions and scikit-learn fits are many times slower when several threads spin
    on a busy 2-core machine. Modules opt in with ``pytestmark = pytest.mark.usefixtures(...)``.
    """
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(previous)
