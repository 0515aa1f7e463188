"""Shared fixtures: a private data cache per test, small trial configs."""

from __future__ import annotations

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
