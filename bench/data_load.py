"""Time dataset loading: cold parse + transform, cached load, and pandas.read_csv for reference.

For each real dataset (read from ``../shared/datasets`` beside the repository by default):

- cold: ``load_dataset`` with a fresh cache directory (hash, parse, split, fit, transform,
  write the cache entry);
- cached: ``load_dataset`` again, the median of ``--repeats`` runs (hash the input, verify
  and load the entry, rebuild the transform);
- read_csv: ``pandas.read_csv`` of the same rows written out as a plain CSV, the median of
  ``--repeats`` runs; ``cached/read_csv`` is the ratio of the two medians.

Run: ``python bench/data_load.py [--datasets DIR] [--repeats N]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from gan_hpc.config import DataConfig
from gan_hpc.data import readers
from gan_hpc.data.datasets import load_dataset
from gan_hpc.data.types import Table

DEFAULT_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
CASES: dict[str, dict[str, str]] = {
    "adult/adult.arff": {"format": "arff"},
    "bank_marketing/bank-full.csv": {"format": "csv"},
}


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_case(path: Path, options: dict[str, str], repeats: int, work_dir: Path) -> dict:
    config = DataConfig(path=str(path), cache_dir=str(work_dir / "cache"), **options)
    start = time.perf_counter()
    data = load_dataset(config)
    cold = time.perf_counter() - start
    cached = median_seconds(lambda: load_dataset(config), repeats)

    raw = readers.read_data(config)
    assert isinstance(raw, Table)
    plain_csv = work_dir / "plain.csv"
    raw.frame.to_csv(plain_csv, index=False)
    read_csv = median_seconds(lambda: pd.read_csv(plain_csv), repeats)
    return {
        "dataset": str(path.relative_to(path.parents[1])),
        "rows": data.num_raw_rows,
        "features": data.schema.sample_shape[0],
        "cold parse+transform s": round(cold, 3),
        "cached load s": round(cached, 3),
        "read_csv s": round(read_csv, 3),
        "cached/read_csv": round(cached / read_csv, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets",
        type=Path,
        default=DEFAULT_DATASETS,
        help=f"folder holding adult/ and bank_marketing/ (default: {DEFAULT_DATASETS})",
    )
    parser.add_argument("--repeats", type=int, default=5, help="runs per median (default: 5)")
    args = parser.parse_args(argv)
    rows = []
    for relative, options in CASES.items():
        path = args.datasets / relative
        if not path.is_file():
            print(f"{path}: not found (use --datasets)", file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory(prefix="gan_hpc_bench_") as work_dir:
            rows.append(bench_case(path, options, args.repeats, Path(work_dir)))
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
