"""Seconds per tabular quality scoring: a trial's first evaluation against its later ones.

A trial scores the same real rows (the validation split, the training rows) at every
evaluation; only the synthetic table changes. The real side (TRTR's classifier, the training
rows' keys and closest-record reference, the holdout's distances) is computed at the first
evaluation and reused after it. This bench scores a spec's data as its trials do, with
``quality.num_rows`` synthetic rows drawn from the real training rows (the figures do not depend
on how good the synthetic rows are), and prints the median seconds of a first scoring (real
side computed) and of a later one (real side reused), one thread, as a ratio.

    python bench/tabular_scoring.py [--spec sweeps/adult_mlp.yaml] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

import gan_hpc.quality.tabular as tabular
from gan_hpc.bundle.scoring import real_tables
from gan_hpc.config import load_trial_config
from gan_hpc.data.datasets import load_dataset
from gan_hpc.quality.types import TabularInputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=Path("sweeps/adult_mlp.yaml"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_trial_config(args.spec)
    data = load_dataset(config.data)
    train, held_out = real_tables(data)
    first, later = [], []
    with threadpool_limits(limits=1):
        for repeat in range(args.repeats):
            synthetic = train.sample(config.quality.num_rows, random_state=repeat)
            inputs = TabularInputs(
                real_train=train,
                real_test=held_out,
                synthetic=synthetic.reset_index(drop=True),
                condition_column=config.data.condition_column,
            )
            tabular._REAL_SIDE.clear()  # a new trial process: nothing scored yet
            for timings in (first, later):
                started = time.perf_counter()
                tabular.tabular_quality(inputs, config.quality)
                timings.append(time.perf_counter() - started)
    cold, warm = statistics.median(first), statistics.median(later)
    print(
        f"{args.spec}: {len(train)} training rows, {len(held_out)} held-out rows, "
        f"{config.quality.num_rows} rows per side, median of {args.repeats}\n"
    )
    print("| scoring | seconds | ratio |")
    print("|---|---|---|")
    print(f"| first evaluation of a trial (real side computed) | {cold:.2f} | 1.00 |")
    print(f"| every later evaluation (real side reused) | {warm:.2f} | {warm / cold:.2f} |")


if __name__ == "__main__":
    main()
