"""Time of the tabular Gumbel-softmax head against torch's own per-block ``gumbel_softmax``.

Both map the same ``[batch, features]`` logits of a table's blocks to rows (numeric values and
exact one-hot categories) and back-propagate through them, in the same run. The blocks are
read from a spec's data (default: the Adult spec: 14 columns, 8 categorical and 2 mixed).

    python bench/tabular_head.py [--spec sweeps/adult_mlp.yaml] [--batch-sizes 500 1000]
        [--threads 1 2] [--repeats 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from gan_hpc.config import load_trial_config
from gan_hpc.data.datasets import load_dataset
from gan_hpc.data.types import ColumnBlock
from gan_hpc.trial.models import TabularHead

ROOT = Path(__file__).resolve().parents[1]
TAU = 0.2


def per_block_reference(blocks: list[ColumnBlock]) -> Callable[[torch.Tensor], torch.Tensor]:
    """The straightforward head: one ``F.gumbel_softmax`` call (one noise draw) per block."""
    widths = [block.width for block in blocks]

    def head(logits: torch.Tensor) -> torch.Tensor:
        parts = []
        for part, block in zip(logits.split(widths, dim=1), blocks, strict=True):
            if block.kind == "numeric":
                parts.append(part)
            elif block.kind == "categorical":
                parts.append(F.gumbel_softmax(part, tau=TAU, hard=True))
            else:
                at_spike = F.gumbel_softmax(part[:, :2], tau=TAU, hard=True)
                parts += [at_spike, part[:, 2:] * at_spike[:, 1:]]
        return torch.cat(parts, dim=1)

    return head


def milliseconds(
    head: Callable[[torch.Tensor], torch.Tensor], batch: int, width: int, n: int
) -> float:
    """Median time of one forward and backward through ``head``, in ms."""
    logits = torch.randn(batch, width, requires_grad=True)
    weights = torch.randn(batch, width)
    times = []
    for index in range(n + 10):
        started = time.perf_counter()
        (head(logits) * weights).sum().backward()
        if index >= 10:  # warm-up
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "sweeps" / "adult_mlp.yaml")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[500, 1000])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    schema = load_dataset(load_trial_config(args.spec).data).schema
    blocks = list(schema.blocks)
    width = sum(block.width for block in blocks)
    head = TabularHead(blocks=blocks, numeric_activation="none", head="gumbel", gumbel_tau=TAU)
    reference = per_block_reference(blocks)
    kinds = {kind: sum(block.kind == kind for block in blocks) for kind in ("categorical", "mixed")}
    print(f"{args.spec.name}: {len(blocks)} blocks ({kinds}), {width} features\n")
    print("| batch | threads | per-block gumbel_softmax ms | TabularHead ms | ratio |")
    print("|---|---|---|---|---|")
    for batch in args.batch_sizes:
        for threads in args.threads:
            torch.set_num_threads(threads)
            base = milliseconds(reference, batch, width, args.repeats)
            ours = milliseconds(head, batch, width, args.repeats)
            print(f"| {batch} | {threads} | {base:.2f} | {ours:.2f} | {ours / base:.2f} |")


if __name__ == "__main__":
    main()
