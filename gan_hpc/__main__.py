"""``python -m gan_hpc`` runs the CLI."""

from __future__ import annotations

import sys

from gan_hpc.cli import main

if __name__ == "__main__":
    sys.exit(main())
