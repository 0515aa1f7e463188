from __future__ import annotations

import gzip
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pandas as pd
import pytest
import scipy.io

from gan_hpc.config import (
    CsvOptions,
    DataConfig,
    DataFormat,
    FrfOptions,
    ImageOptions,
    MatOptions,
    SyntheticFrfConfig,
)
from gan_hpc.data.readers import READERS, format_for_path, read_data
from gan_hpc.data.synthetic import simulate_plate_frf, write_frf_excel
from gan_hpc.data.types import Arrays, ColumnInfo, Table
from gan_hpc.errors import DataError


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _read(path: Path, **kwargs: Any) -> Any:
    return read_data(DataConfig(path=str(path), **kwargs))


def _assert_one_line_error(excinfo: pytest.ExceptionInfo[DataError], path: Path, line: int) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}: "), message
    assert "fix" in message
    return message


# ---------------------------------------------------------------------------------------- ARFF

RICH_ARFF = """% A comment before the header
% and another
@RELATION people

@ATTRIBUTE age NUMERIC
@attribute count integer
@attribute 'body mass' real
@ATTRIBUTE city {'New York', Paris, "Sao Paulo"}
@ATTRIBUTE note STRING
@ATTRIBUTE born DATE "yyyy-MM-dd HH:mm"
@ATTRIBUTE day date yyyy-MM-dd
@attribute stamp date

@DATA
% a comment inside the data
30, 2, 71.5, 'New York', 'likes tea', "1990-05-01 12:30", 1990-05-01, 2001-02-03T04:05:06
?, ?, ?, ?, ?, ?, ?, ?

41,0,80,Paris,plain,"2000-12-31 23:59",2000-12-31,2001-02-03T00:00:00
"""

ADULT_STYLE_ARFF = """@relation adult
@attribute age numeric
@attribute workclass { State-gov, Private, ?, Never-worked}
@attribute class { <=50K, >50K}
@data
39, State-gov, <=50K
50, ?, >50K
38, Private, <=50K
"""

SPARSE_ARFF = """@relation sparse
@attribute a numeric
@attribute b numeric
@attribute c {x, y, z}
@attribute d string
@data
{0 1.5, 2 y}
{1 -2, 3 'hello world'}
{}
{2 ?}
"""


def test_arff_types_missing_quotes_dates_and_comments(tmp_path: Path) -> None:
    table = _read(_write(tmp_path / "people.arff", RICH_ARFF))
    assert isinstance(table, Table)
    frame = table.frame
    assert list(frame.columns) == [
        "age",
        "count",
        "body mass",
        "city",
        "note",
        "born",
        "day",
        "stamp",
    ]
    assert [c.kind for c in table.columns] == [
        "numeric",
        "numeric",
        "numeric",
        "categorical",
        "string",
        "date",
        "date",
        "date",
    ]
    assert table.columns[3] == ColumnInfo(
        name="city", kind="categorical", categories=("New York", "Paris", "Sao Paulo")
    )
    for name in ("age", "count", "body mass"):
        assert frame[name].dtype == np.float64
    np.testing.assert_array_equal(frame["body mass"], [71.5, np.nan, 80.0])
    assert list(frame["city"].cat.categories) == ["New York", "Paris", "Sao Paulo"]
    assert frame["city"].tolist()[0] == "New York" and pd.isna(frame["city"][1])
    assert frame["note"].tolist()[0] == "likes tea" and pd.isna(frame["note"][1])
    assert frame["born"].dtype.kind == "M"
    assert frame["born"][0] == pd.Timestamp("1990-05-01 12:30")
    assert pd.isna(frame["born"][1])
    assert frame["day"][2] == pd.Timestamp("2000-12-31")
    assert frame["stamp"][0] == pd.Timestamp("2001-02-03 04:05:06")
    assert table.source == str(tmp_path / "people.arff")


def test_arff_adult_style_leading_spaces_and_declared_question_mark(tmp_path: Path) -> None:
    table = _read(_write(tmp_path / "adult.arff", ADULT_STYLE_ARFF))
    workclass = table.frame["workclass"]
    assert list(workclass.cat.categories) == ["State-gov", "Private", "Never-worked"]
    assert workclass[0] == "State-gov" and pd.isna(workclass[1]) and workclass[2] == "Private"
    assert table.columns[1].categories == ("State-gov", "Private", "Never-worked")
    assert table.frame["class"].tolist() == ["<=50K", ">50K", "<=50K"]


def test_arff_sparse_rows(tmp_path: Path) -> None:
    frame = _read(_write(tmp_path / "sparse.arff", SPARSE_ARFF)).frame
    np.testing.assert_array_equal(frame["a"], [1.5, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(frame["b"], [0.0, -2.0, 0.0, 0.0])
    # An omitted nominal value is the first declared one (Weka's sparse convention).
    assert frame["c"].tolist()[:3] == ["y", "x", "x"] and pd.isna(frame["c"][3])
    assert frame["d"][1] == "hello world"


def test_arff_zoned_dates_become_naive_utc(tmp_path: Path) -> None:
    text = (
        '@relation z\n@attribute at date "yy-MM-dd HH:mm:ss Z"\n'
        '@attribute utc date "yyyy-MM-dd HH:mm z"\n@data\n'
        '"99-01-31 00:01:08 +0430","1999-01-31 00:01 UTC"\n'
    )
    frame = _read(_write(tmp_path / "zoned.arff", text)).frame
    assert frame["at"][0] == pd.Timestamp("1999-01-30 19:31:08")
    assert frame["utc"][0] == pd.Timestamp("1999-01-31 00:01")


def test_arff_empty_data_section(tmp_path: Path) -> None:
    text = "@relation e\n@attribute a numeric\n@attribute b {u, v}\n@data\n% none\n"
    table = _read(_write(tmp_path / "empty.arff", text))
    assert table.frame.shape == (0, 2)
    assert table.frame["a"].dtype == np.float64


MALFORMED = {
    "bad_nominal": ("@relation r\n@attribute a {x, y}\n@data\nx\nq\n", 5, "'q'"),
    "wrong_count": (
        "@relation r\n@attribute a numeric\n@attribute b numeric\n@data\n1,2\n3\n",
        6,
        "2 declared attributes",
    ),
    "bad_attribute": (
        "@relation r\n@attribute a numeric\n@attribute\n@data\n1\n",
        3,
        "bad @attribute line",
    ),
    "bad_type": ("@relation r\n@attribute a crap\n@data\n1\n", 2, "unknown attribute type"),
    "not_a_number": ("@relation r\n@attribute a numeric\n@data\n1\nabc\n", 5, "non-numeric"),
    "relational": (
        "@relation r\n@attribute bag relational\n  @attribute x numeric\n@end bag\n@data\n'1'\n",
        2,
        "relational",
    ),
    "bad_date": (
        "@relation r\n@attribute d date yyyy-MM-dd\n@data\n2001-01-01\n\n2001-13-45\n",
        6,
        "does not match",
    ),
    "no_data": ("@relation r\n@attribute a numeric\n", 2, "no @data line"),
    "bad_quoting": ("@relation r\n@attribute a string\n@data\n'abc\n", 4, "cannot split"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_arff_malformed_gives_one_line_with_file_and_line(tmp_path: Path, case: str) -> None:
    text, line, fragment = MALFORMED[case]
    path = _write(tmp_path / f"{case}.arff", text)
    with pytest.raises(DataError) as excinfo:
        _read(path)
    message = _assert_one_line_error(excinfo, path, line)
    assert fragment in message


# ----------------------------------------------------------------------------------------- CSV


def test_csv_semicolon_quotes_and_kinds(tmp_path: Path) -> None:
    text = '"age";"job";"note";"y"\n58;"management";"a;b";"no"\n44;"blue collar";"c";"yes"\n'
    text += '33;"admin.";"d";"no"\n'
    table = _read(_write(tmp_path / "bank.csv", text))
    assert list(table.frame.columns) == ["age", "job", "note", "y"]
    assert table.frame["age"].dtype == np.float64
    assert table.columns[1].categories == ("admin.", "blue collar", "management")
    assert table.frame["note"].tolist() == ["a;b", "c", "d"]
    assert [c.kind for c in table.columns] == [
        "numeric",
        "categorical",
        "categorical",
        "categorical",
    ]


def test_tsv_detected(tmp_path: Path) -> None:
    text = "x\ty\tlabel\n1.5\t2\ta\n2.5\t?\tb\n"
    table = _read(_write(tmp_path / "t.tsv", text))
    np.testing.assert_array_equal(table.frame["y"], [2.0, np.nan])
    assert table.frame["label"].tolist() == ["a", "b"]


def test_headerless_csv_with_names_spaces_and_missing(tmp_path: Path) -> None:
    text = "|1x3 Cross validator\n39, State-gov, 77516, <=50K\n50, ?, 83311, >50K\n\n"
    path = _write(tmp_path / "adult.test", text)
    config = DataConfig(
        format="csv",
        path=str(path),
        csv=CsvOptions(
            has_header=False, skip_rows=1, column_names=("age", "workclass", "fnlwgt", "class")
        ),
    )
    table = read_data(config)
    assert table.frame.shape == (2, 4)
    assert table.frame["workclass"][0] == "State-gov" and pd.isna(table.frame["workclass"][1])
    assert table.columns[3].categories == ("<=50K", ">50K")


def test_headerless_csv_default_names_and_gzip(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv.gz"
    path.write_bytes(gzip.compress(b"1|a\n2|b\n3|a\n"))
    table = read_data(DataConfig(path=str(path), csv=CsvOptions(has_header=False)))
    assert list(table.frame.columns) == ["column_0", "column_1"]
    np.testing.assert_array_equal(table.frame["column_0"], [1.0, 2.0, 3.0])


def test_csv_forced_categorical_sorts_numbers_numerically(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.csv", "code,v\n10,1\n2,2\n1,3\n10,4\n")
    table = _read(path, csv=CsvOptions(categorical_columns=("code",)))
    assert table.columns[0] == ColumnInfo(
        name="code", kind="categorical", categories=("1", "2", "10")
    )
    assert table.frame["code"].tolist() == ["10", "2", "1", "10"]


def test_csv_errors_name_file_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.csv", "code,value\n1,2\n")
    with pytest.raises(
        DataError,
        match=r"c\.csv: data\.csv\.categorical_columns: no column "
        r"'vlaue' \(did you mean 'value'\?\)",
    ):
        _read(path, csv=CsvOptions(categorical_columns=("vlaue",)))
    with pytest.raises(
        DataError,
        match=r"c\.csv: data\.csv\.column_names has 3 names but the "
        r"file has 2 columns",
    ):
        _read(path, csv=CsvOptions(column_names=("a", "b", "c")))
    with pytest.raises(DataError, match=r"c\.csv: data\.condition_column: no column 'label'"):
        _read(path, condition_column="label")
    ragged = _write(tmp_path / "ragged.csv", "a,b\n1,2\n3,4,5\n")
    with pytest.raises(DataError, match=r"ragged\.csv: .*line 3.*fix"):
        _read(ragged)


def test_drop_columns(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", "age,fnlwgt,label\n1,2,a\n3,4,b\n")
    table = _read(path, drop_columns=("fnlwgt",))
    assert list(table.frame.columns) == ["age", "label"]
    assert [c.name for c in table.columns] == ["age", "label"]
    with pytest.raises(DataError) as excinfo:
        _read(path, drop_columns=("fnlwgth",))
    message = str(excinfo.value)
    assert str(path) in message and "'fnlwgth'" in message
    assert "did you mean 'fnlwgt'" in message and "age, fnlwgt, label" in message


# -------------------------------------------------------------------------------------- images


def _idx_bytes(array: np.ndarray) -> bytes:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int16): 0x0B, np.dtype(np.float32): 0x0D}
    header = struct.pack(">BBBB", 0, 0, codes[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("compressed", [True, False])
def test_idx_images_and_labels(tmp_path: Path, compressed: bool) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 5, 4), dtype=np.uint8)
    labels = np.array([3, 1, 3, 0, 1, 7], dtype=np.uint8)
    suffix = ".gz" if compressed else ""
    pack = gzip.compress if compressed else bytes
    (tmp_path / f"imgs-idx3-ubyte{suffix}").write_bytes(pack(_idx_bytes(images)))
    (tmp_path / f"lbls-idx1-ubyte{suffix}").write_bytes(pack(_idx_bytes(labels)))
    arrays = read_data(
        DataConfig(
            path=str(tmp_path / f"imgs-idx3-ubyte{suffix}"),
            images=ImageOptions(labels_path=f"lbls-idx1-ubyte{suffix}"),  # beside the images
        )
    )
    assert isinstance(arrays, Arrays) and arrays.kind == "image"
    assert arrays.samples.shape == (6, 1, 5, 4) and arrays.samples.dtype == np.uint8
    np.testing.assert_array_equal(arrays.samples[:, 0], images)
    assert arrays.label_names == ("0", "1", "3", "7")
    assert arrays.labels.dtype == np.int64
    np.testing.assert_array_equal(arrays.labels, [2, 1, 2, 0, 1, 3])


def test_idx_non_byte_dtype_and_truncated(tmp_path: Path) -> None:
    values = np.arange(24, dtype=np.int16).reshape(2, 3, 4) - 5
    path = tmp_path / "v.idx"
    path.write_bytes(_idx_bytes(values))
    arrays = _read(path)
    np.testing.assert_array_equal(arrays.samples[:, 0], values)
    assert arrays.samples.dtype == np.int16 and arrays.labels is None
    path.write_bytes(_idx_bytes(values)[:-3])
    with pytest.raises(DataError, match=r"v\.idx: IDX file has .* bytes"):
        _read(path)


def test_npz_members_channels_last_and_pairing(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x_train = rng.random((4, 6, 6, 3), dtype=np.float32)
    y_train = np.array([1, 0, 1, 1])
    np.savez(tmp_path / "d.npz", meta=np.zeros(3), x_train=x_train, y_train=y_train)
    arrays = _read(tmp_path / "d.npz")
    assert arrays.samples.shape == (4, 3, 6, 6) and arrays.samples.dtype == np.float32
    np.testing.assert_array_equal(arrays.samples, np.moveaxis(x_train, -1, 1))
    np.testing.assert_array_equal(arrays.labels, [1, 0, 1, 1])
    np.savez(tmp_path / "e.npz", pics=x_train[..., 0], labels=np.array([5, 5, 6, 6]))
    arrays = _read(tmp_path / "e.npz")
    assert arrays.samples.shape == (4, 1, 6, 6) and arrays.label_names == ("5", "6")
    with pytest.raises(DataError, match=r"e\.npz: no member 'picz' \(did you mean 'pics'\?\)"):
        _read(tmp_path / "e.npz", images=ImageOptions(images_key="picz"))


def test_npy_with_npy_labels(tmp_path: Path) -> None:
    images = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    np.save(tmp_path / "x.npy", images)
    np.save(tmp_path / "y.npy", np.array([2, 9]))
    arrays = _read(tmp_path / "x.npy", images=ImageOptions(labels_path=str(tmp_path / "y.npy")))
    assert arrays.samples.shape == (2, 1, 4, 4)
    assert arrays.label_names == ("2", "9")
    np.save(tmp_path / "y3.npy", np.array([1, 2, 3]))
    with pytest.raises(DataError, match=r"y3\.npy: 3 labels for 2 samples"):
        _read(tmp_path / "x.npy", images=ImageOptions(labels_path=str(tmp_path / "y3.npy")))


def test_pixels_csv_square_inference_labels_and_header(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 17, size=(5, 64))
    labels = np.array([4, 2, 4, 0, 9])
    rows = np.column_stack([pixels, labels])
    path = tmp_path / "digits.csv.gz"
    path.write_bytes(gzip.compress("\n".join(",".join(map(str, r)) for r in rows).encode()))
    arrays = read_data(DataConfig(format="pixels_csv", path=str(path)))
    assert arrays.samples.shape == (5, 1, 8, 8)
    np.testing.assert_array_equal(arrays.samples.reshape(5, 64), pixels)
    assert arrays.label_names == ("0", "2", "4", "9")
    np.testing.assert_array_equal(arrays.labels, [2, 1, 2, 0, 3])
    # A header row, the label first, and an explicit (H, W).
    header = "label," + ",".join(f"p{i}" for i in range(64))
    body = "\n".join(
        ",".join(map(str, [lab, *row])) for lab, row in zip(labels, pixels, strict=True)
    )
    path = _write(tmp_path / "with_header.csv", header + "\n" + body + "\n")
    config = DataConfig(
        format="pixels_csv",
        path=str(path),
        images=ImageOptions(label_column=0, image_shape=(4, 16)),
    )
    arrays = read_data(config)
    assert arrays.samples.shape == (5, 1, 4, 16)
    np.testing.assert_array_equal(arrays.samples.reshape(5, 64), pixels)
    with pytest.raises(DataError, match=r"65 values per row is not a square image"):
        read_data(
            DataConfig(format="pixels_csv", path=str(path), images=ImageOptions(label_column=None))
        )


# -------------------------------------------------------------------------------------- MATLAB


def test_mat_flat_rows_are_zero_padded_to_a_square(tmp_path: Path) -> None:
    rows = np.random.default_rng(3).random((3, 4734))
    scipy.io.savemat(tmp_path / "signals.mat", {"X": rows})
    arrays = _read(tmp_path / "signals.mat")
    assert arrays.samples.shape == (3, 1, 69, 69) and arrays.samples.dtype == np.float64
    assert arrays.metadata["flat_length"] == 4734
    flat = arrays.samples.reshape(3, -1)
    np.testing.assert_array_equal(flat[:, :4734], rows)
    assert np.all(flat[:, 4734:] == 0) and flat.shape[1] - 4734 == 27


def test_mat_variable_choice_and_samples_axis(tmp_path: Path) -> None:
    a = np.arange(2 * 16, dtype=np.float64).reshape(2, 16)
    scipy.io.savemat(tmp_path / "two.mat", {"A": a, "B": a.T.copy()})
    with pytest.raises(DataError) as excinfo:
        _read(tmp_path / "two.mat")
    message = str(excinfo.value)
    assert "two.mat" in message and "A, B" in message and "data.mat.variable" in message
    arrays = _read(tmp_path / "two.mat", mat=MatOptions(variable="A"))
    assert arrays.samples.shape == (2, 1, 4, 4)
    by_column = _read(tmp_path / "two.mat", mat=MatOptions(variable="B", samples_axis=1))
    np.testing.assert_array_equal(by_column.samples, arrays.samples)
    with pytest.raises(DataError, match=r"no variable 'a' .*fix: set data\.mat\.variable"):
        _read(tmp_path / "two.mat", mat=MatOptions(variable="a"))


def test_mat_v73_names_the_alternative(tmp_path: Path) -> None:
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5"
    header = text.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    path = tmp_path / "big.mat"
    path.write_bytes(header.ljust(512, b"\x00") + b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(DataError) as excinfo:
        _read(path)
    message = str(excinfo.value)
    assert message.startswith(str(path)) and "v7.3" in message and "'-v7'" in message
    assert "npy" in message and "\n" not in message


# ----------------------------------------------------------------------------------------- FRF


def _plate(tmp_path: Path, **kwargs: Any) -> Path:
    frfs = simulate_plate_frf(SyntheticFrfConfig(num_points=4, num_frequencies=8, **kwargs))
    return write_frf_excel(frfs, tmp_path / "plate")


def test_frf_missing_file_names_row_and_file(tmp_path: Path) -> None:
    coordinates = _plate(tmp_path)
    (coordinates.parent / "frf" / "point_0003.xlsx").unlink()
    with pytest.raises(
        DataError,
        match=r"coordinates\.xlsx: row 4: FRF file 'point_0003\.xlsx' "
        r"not found",
    ):
        _read(coordinates)


def test_frf_frequency_axes_must_agree(tmp_path: Path) -> None:
    coordinates = _plate(tmp_path)
    odd = coordinates.parent / "frf" / "point_0002.xlsx"
    sheet = pd.read_excel(odd)
    sheet["frequency_hz"] *= 1.01
    sheet.to_excel(odd, index=False)
    with pytest.raises(DataError, match=r"point_0002\.xlsx: its frequency axis differs"):
        _read(coordinates)


def test_frf_custom_headers_phase_units_and_flat_folder(tmp_path: Path) -> None:
    frequencies = np.linspace(10.0, 100.0, 6)
    curves = [np.exp(1j * np.linspace(-1.0, 1.0, 6)) * (k + 1) for k in range(3)]
    for k, curve in enumerate(curves):
        sheet = pd.DataFrame(
            {
                "Freq (Hz)": frequencies,
                "Amplitude": np.abs(curve),
                "Phase": np.degrees(np.angle(curve)),  # spans 115 degrees: read as degrees
            }
        )
        sheet.to_csv(tmp_path / f"p{k}.csv", index=False)
    table = pd.DataFrame(
        {"X": [0.1, 0.2, 0.3], "Y": [1.0, 2.0, 3.0], "name": [f"p{k}.csv" for k in range(3)]}
    )
    table.to_excel(tmp_path / "coordinates.xlsx", index=False)
    arrays = read_data(DataConfig(path=str(tmp_path), frf=FrfOptions(representation="real_imag")))
    assert arrays.condition_names == ("X", "Y")
    np.testing.assert_allclose(arrays.samples[:, 0], np.real(curves), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(arrays.samples[:, 1], np.imag(curves), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(arrays.axis, frequencies)
    # Phase in radians (range under 2 pi, no unit in the header) is left as radians.
    for k, curve in enumerate(curves):
        pd.DataFrame(
            {"frequency": frequencies, "magnitude": np.abs(curve), "phi": np.angle(curve)}
        ).to_csv(tmp_path / f"p{k}.csv", index=False)
    arrays = read_data(DataConfig(path=str(tmp_path), frf=FrfOptions(representation="real_imag")))
    np.testing.assert_allclose(arrays.samples[:, 1], np.imag(curves), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------ formats, contract


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("adult.arff", "arff"),
        ("bank-full.csv", "csv"),
        ("x.TSV", "csv"),
        ("adult.data", "csv"),
        ("notes.txt", "csv"),
        ("digits.csv.gz", "csv"),
        ("t10k-images-idx3-ubyte.gz", "idx"),
        ("t10k-images.idx3-ubyte", "idx"),
        ("images.idx", "idx"),
        ("a.npz", "npz"),
        ("a.npy", "npy"),
        ("signals.mat", "mat"),
        ("coordinates.xlsx", "frf_excel"),
    ],
)
def test_format_for_path(name: str, expected: str) -> None:
    assert format_for_path(Path(name)) == expected


def test_format_for_path_directory_and_unknown(tmp_path: Path) -> None:
    (tmp_path / "coordinates.xlsx").touch()
    assert format_for_path(tmp_path) == "frf_excel"
    with pytest.raises(DataError) as excinfo:
        format_for_path(tmp_path / "adult.test")
    message = str(excinfo.value)
    assert "adult.test" in message and "data.format" in message
    assert "arff, csv, idx" in message and "\n" not in message


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nowhere\.arff: file not found"):
        _read(tmp_path / "nowhere.arff")


def _tiny_arff(tmp_path: Path) -> DataConfig:
    return DataConfig(path=str(_write(tmp_path / "t.arff", ADULT_STYLE_ARFF)))


def _tiny_csv(tmp_path: Path) -> DataConfig:
    return DataConfig(path=str(_write(tmp_path / "t.csv", "a,b\n1,x\n2,y\n")))


def _tiny_idx(tmp_path: Path) -> DataConfig:
    (tmp_path / "t.idx").write_bytes(_idx_bytes(np.zeros((2, 3, 3), dtype=np.uint8)))
    return DataConfig(path=str(tmp_path / "t.idx"))


def _tiny_npz(tmp_path: Path) -> DataConfig:
    np.savez(tmp_path / "t.npz", x=np.zeros((2, 3, 3)))
    return DataConfig(path=str(tmp_path / "t.npz"))


def _tiny_npy(tmp_path: Path) -> DataConfig:
    np.save(tmp_path / "t.npy", np.zeros((2, 3, 3)))
    return DataConfig(path=str(tmp_path / "t.npy"))


def _tiny_pixels(tmp_path: Path) -> DataConfig:
    path = _write(tmp_path / "p.csv", "0,1,2,3,1\n4,5,6,7,0\n")
    return DataConfig(format="pixels_csv", path=str(path))


def _tiny_mat(tmp_path: Path) -> DataConfig:
    scipy.io.savemat(tmp_path / "t.mat", {"X": np.ones((2, 5))})
    return DataConfig(path=str(tmp_path / "t.mat"))


def _tiny_frf(tmp_path: Path) -> DataConfig:
    return DataConfig(path=str(_plate(tmp_path)))


def _tiny_synthetic(tmp_path: Path) -> DataConfig:
    return DataConfig(
        format="synthetic_frf", synthetic=SyntheticFrfConfig(num_points=4, num_frequencies=8)
    )


TINY: dict[str, Callable[[Path], DataConfig]] = {
    "arff": _tiny_arff,
    "csv": _tiny_csv,
    "idx": _tiny_idx,
    "npz": _tiny_npz,
    "npy": _tiny_npy,
    "pixels_csv": _tiny_pixels,
    "mat": _tiny_mat,
    "frf_excel": _tiny_frf,
    "synthetic_frf": _tiny_synthetic,
}


def test_every_format_has_a_reader() -> None:
    assert set(READERS) == set(get_args(DataFormat)) == set(TINY)


@pytest.mark.parametrize("fmt", sorted(READERS))
def test_reader_contract(tmp_path: Path, fmt: str) -> None:
    config = TINY[fmt](tmp_path)
    raw = read_data(config)
    if isinstance(raw, Table):
        assert [c.name for c in raw.columns] == list(raw.frame.columns)
        assert len(raw.frame) >= 2
        for info in raw.columns:
            column = raw.frame[info.name]
            if info.kind == "numeric":
                assert column.dtype == np.float64
            elif info.kind == "categorical":
                assert list(column.cat.categories) == list(info.categories)
    else:
        assert isinstance(raw, Arrays)
        assert raw.samples.ndim == (4 if raw.kind == "image" else 3)
        assert len(raw.samples) >= 2
        if raw.labels is not None:
            assert raw.labels.dtype == np.int64 and len(raw.labels) == len(raw.samples)
            assert raw.labels.max() < len(raw.label_names)
        if raw.kind == "signal":
            assert raw.samples.dtype == np.float32
            assert raw.conditions.shape == (len(raw.samples), len(raw.condition_names))
            assert raw.axis.shape == (raw.samples.shape[-1],)
            assert len(raw.channel_names) == raw.samples.shape[1]
    assert raw.source
