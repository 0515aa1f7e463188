"""Durable files: strict JSON with NaN as null; append-only JSONL that survives a torn line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from gan_hpc.files import append_jsonl, atomic_write_json, read_jsonl
from gan_hpc.sweep.optuna_search import final_values
from gan_hpc.trial_dir import TrialDir, parse_metrics_line


def _record(step: int) -> dict[str, float]:
    return {"step": step, "epoch": 0, "d_loss": 0.5, "wall_time_s": 1.0}


def _torn(step: int) -> str:
    """The first half of a record, as left by a writer killed mid-append (no newline)."""
    line = json.dumps(_record(step), sort_keys=True)
    return line[: len(line) // 2]


def _steps(path: Path) -> list[int]:
    return [int(r["step"]) for r in read_jsonl(path, key="step")]


def test_the_record_after_a_torn_line_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, _record(100))
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(_torn(110))
    for step in (120, 140):
        append_jsonl(path, _record(step))
    assert _steps(path) == [100, 120, 140]
    assert [r["step"] for r in TrialDir(tmp_path).read_metrics()] == [100, 120, 140]
    lines = path.read_text().split("\n")
    assert lines[1] == _torn(110)  # the torn line stays alone on its line


@pytest.mark.parametrize("cut", [1, 5, 12, 20, 40])
def test_a_torn_line_glued_to_the_next_record_reads_as_that_record(
    tmp_path: Path, cut: int
) -> None:
    # files written by a writer that did not start a fresh line after a torn one
    path = tmp_path / "metrics.jsonl"
    good = [json.dumps(_record(s), sort_keys=True) for s in (100, 120, 140)]
    torn = json.dumps({"step": 110, "nested": {"step": 1}, "x": 1.0})[:cut]
    path.write_text(f"{good[0]}\n{torn}{good[1]}\n{good[2]}\n")
    assert _steps(path) == [100, 120, 140]


def test_a_torn_line_completed_later_reads_once(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, _record(100))
    full = json.dumps(_record(120), sort_keys=True) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(full[:10])
    assert _steps(path) == [100]  # a line still being written is not a record yet
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(full[10:])
    append_jsonl(path, _record(140))
    assert _steps(path) == [100, 120, 140]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"step": 3}', {"step": 3}),
        ('{"st{"step": 3}', {"step": 3}),
        ('{"a": {"b": 1}', None),  # a torn record ending in a nested object: not a record
        ('{"step": 1, "m": {"c": 2}', None),
        ("[1, 2]", None),
        ("", None),
        ("\x00\x00", None),
    ],
)
def test_parse_metrics_line(line: str, expected: dict[str, int] | None) -> None:
    assert parse_metrics_line(line) == expected


def test_atomic_write_json_writes_nan_and_infinities_as_null(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    payload = {
        "score": math.nan,
        "nested": {"values": [1.5, math.inf, np.float32("nan"), np.float64(-math.inf)]},
        "steps": (np.int64(3), 4),
        "where": tmp_path,
    }
    atomic_write_json(path, payload)
    text = path.read_text(encoding="utf-8")
    assert "NaN" not in text and "Infinity" not in text
    # strict parsers reject NaN tokens: parse the way they do
    document = json.loads(text, parse_constant=lambda token: pytest.fail(f"token {token}"))
    assert document == {
        "score": None,
        "nested": {"values": [1.5, None, None, None]},
        "steps": [3, 4],
        "where": str(tmp_path),
    }


def test_append_jsonl_writes_nan_as_null_and_the_last_value_reads_as_nan(tmp_path: Path) -> None:
    trial = TrialDir(tmp_path)
    trial.append_metrics(step=100, epoch=0, wall_time_s=1.0, metrics={"d_loss_gap": 0.2})
    trial.append_metrics(step=200, epoch=0, wall_time_s=2.0, metrics={"d_loss_gap": math.nan})
    text = trial.metrics_path.read_text(encoding="utf-8")
    assert "NaN" not in text
    records = [json.loads(line, parse_constant=pytest.fail) for line in text.splitlines()]
    assert records[-1]["d_loss_gap"] is None
    # what Optuna is told on a restart: the last value, NaN as reported, not the one before it
    (value,) = final_values(trial, ["d_loss_gap"])
    assert math.isnan(value)
    assert final_values(trial, ["no_such_metric"]) is None
