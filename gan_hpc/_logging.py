"""The library's named logger; nothing is configured at import, only the CLI calls `configure`."""

from __future__ import annotations

import logging
import os

ROOT_LOGGER_NAME = "gan_hpc"
LOG_LEVEL_ENV = "GAN_HPC_LOG_LEVEL"


def get_logger(name: str) -> logging.Logger:
    """Return a logger under the ``gan_hpc`` root (pass ``__name__``)."""
    return logging.getLogger(
        name if name.startswith(ROOT_LOGGER_NAME) else f"{ROOT_LOGGER_NAME}.{name}"
    )


def configure(verbosity: int = 0) -> None:
    """Attach one stderr handler to the ``gan_hpc`` logger.

    Args:
        verbosity: 0 for INFO, 1 or more for DEBUG; ``GAN_HPC_LOG_LEVEL`` wins when set.

    """
    level_name = os.environ.get(LOG_LEVEL_ENV)
    level = logging.DEBUG if verbosity > 0 else logging.INFO
    if level_name:
        level = logging.getLevelName(level_name.upper())
        if not isinstance(level, int):
            level = logging.INFO
    root = logging.getLogger(ROOT_LOGGER_NAME)
    root.setLevel(level)
    if not any(getattr(h, "_gan_hpc", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
        handler._gan_hpc = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.propagate = False
