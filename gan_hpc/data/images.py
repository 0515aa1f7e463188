"""Image readers: IDX (MNIST), NumPy .npy / .npz, pixel rows in CSV and MATLAB .mat arrays.

Each returns :class:`~gan_hpc.data.types.Arrays` of kind ``"image"`` with samples shaped
(N, C, H, W) and, where the file or ``data.images`` gives them, class-index labels.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from gan_hpc.config import DataConfig
from gan_hpc.data.paths import (
    _head_text,
    _one_line,
    _read_bytes,
    _read_delimited,
    _require_path,
    _resolve_beside,
    _sniff_delimiter,
    _suggest,
)
from gan_hpc.data.types import Arrays
from gan_hpc.errors import DataError

# IDX element types by the header's type code (all big-endian on disk).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CHANNEL_COUNTS = (1, 3, 4)


def _encode_labels(raw: np.ndarray, source: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class indices into the sorted distinct labels, and those labels as strings."""
    values = np.asarray(raw).ravel()
    if values.dtype.kind == "f":
        if np.isnan(values).any():
            raise DataError(f"{source}: labels contain missing values (fix: drop those samples)")
        if np.all(values == np.round(values)):
            values = values.astype(np.int64)
    distinct, indices = np.unique(values, return_inverse=True)
    return indices.astype(np.int64), tuple(str(v) for v in distinct.tolist())


def _read_idx_array(path: Path) -> np.ndarray:
    """Parse an IDX file (MNIST's format): magic 0 0 type ndim, big-endian uint32 dims, data."""
    data = _read_bytes(path)
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise DataError(f"{path}: not an IDX file (bad magic number) (fix: check data.path)")
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_DTYPES:
        raise DataError(f"{path}: unknown IDX element type 0x{type_code:02x} (fix: check the file)")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(f"{path}: IDX header is truncated (fix: download the file again)")
    dims = struct.unpack(f">{ndim}I", data[4:header_size])
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected = header_size + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise DataError(
            f"{path}: IDX file has {len(data)} bytes but its header {dims} needs {expected} "
            "(fix: download the file again)"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


def _load_labels(path: Path, num_samples: int, source: Path) -> np.ndarray:
    """Labels from an .npy or IDX file, checked to have one per sample."""
    if not path.is_file():
        raise DataError(f"{path}: labels file not found (fix: check data.images.labels_path)")
    if path.suffix.lower() == ".npy":
        labels = _np_load(path)
    else:
        labels = _read_idx_array(path)
    labels = np.asarray(labels).ravel()
    if len(labels) != num_samples:
        raise DataError(
            f"{path}: {len(labels)} labels for {num_samples} samples in {source} "
            "(fix: point data.images.labels_path at the matching labels file)"
        )
    return labels


def _flat_to_image_shape(
    num_pixels: int, image_shape: tuple[int, ...], source: str
) -> tuple[int, ...]:
    """(C, H, W) for flat rows: ``image_shape`` ((H, W) or (C, H, W)) or an inferred square."""
    if image_shape:
        shape = tuple(image_shape) if len(image_shape) == 3 else (1, *image_shape)
        if len(shape) != 3 or int(np.prod(shape)) != num_pixels:
            raise DataError(
                f"{source}: data.images.image_shape {tuple(image_shape)} does not hold "
                f"{num_pixels} values per row (fix: give (H, W) or (C, H, W) with that product)"
            )
        return shape
    side = math.isqrt(num_pixels)
    if side * side != num_pixels:
        raise DataError(
            f"{source}: {num_pixels} values per row is not a square image (fix: set "
            "data.images.image_shape to (H, W) or (C, H, W))"
        )
    return (1, side, side)


def _to_nchw(array: np.ndarray, config: DataConfig, source: str) -> np.ndarray:
    """Images as (N, C, H, W): flat rows reshaped, (N, H, W) given C=1, channels-last moved."""
    if array.ndim == 2:
        shape = _flat_to_image_shape(array.shape[1], config.images.image_shape, source)
        return array.reshape(len(array), *shape)
    if array.ndim == 3:
        return array[:, None, :, :]
    if array.ndim == 4:
        if array.shape[-1] in _CHANNEL_COUNTS and array.shape[1] not in _CHANNEL_COUNTS:
            return np.ascontiguousarray(np.moveaxis(array, -1, 1))
        if array.shape[1] in _CHANNEL_COUNTS:
            return array
    raise DataError(
        f"{source}: cannot read an array of shape {array.shape} as images (fix: store "
        "(N, H, W), (N, C, H, W) or (N, H, W, C) with C in 1, 3, 4, or flat (N, H*W) rows)"
    )


def _image_arrays(
    images: np.ndarray, labels: np.ndarray | None, config: DataConfig, source: str
) -> Arrays:
    """Arrays(kind='image') with class-index labels."""
    samples = _to_nchw(images, config, source)
    if labels is None:
        return Arrays(kind="image", samples=samples, source=source)
    indices, names = _encode_labels(labels, source)
    return Arrays(kind="image", samples=samples, source=source, labels=indices, label_names=names)


def read_idx(config: DataConfig, path: Path | None) -> Arrays:
    """Read MNIST-style IDX images (gzipped or raw), labels from ``images.labels_path``."""
    path = _require_path(path, "idx")
    images = _read_idx_array(path)
    labels = None
    if config.images.labels_path is not None:
        labels_path = _resolve_beside(path, config.images.labels_path)
        labels = _load_labels(labels_path, len(images), path)
    return _image_arrays(images, labels, config, str(path))


def _np_load(path: Path) -> Any:
    """np.load without pickles, its errors as DataErrors."""
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(
            f"{path}: cannot read as NumPy data: {_one_line(exc)} (fix: save it with numpy.save "
            "/ numpy.savez, without object arrays)"
        ) from None


def read_npy(config: DataConfig, path: Path | None) -> Arrays:
    """Read an image array from .npy; labels from ``images.labels_path`` (.npy or IDX)."""
    path = _require_path(path, "npy")
    images = np.asarray(_np_load(path))
    labels = None
    if config.images.labels_path is not None:
        labels_path = _resolve_beside(path, config.images.labels_path)
        labels = _load_labels(labels_path, len(images), path)
    return _image_arrays(images, labels, config, str(path))


def _npz_member(members: dict[str, np.ndarray], key: str, path: Path, option: str) -> np.ndarray:
    """One named .npz member, or a DataError listing the members."""
    if key not in members:
        raise DataError(
            f"{path}: no member '{key}'{_suggest(key, list(members))} "
            f"(fix: set data.images.{option} to one of: {', '.join(members)})"
        )
    return members[key]


def read_npz(config: DataConfig, path: Path | None) -> Arrays:
    """Read images (and labels) from an .npz archive.

    Images: ``images.images_key``, else the first member with 3 or more dimensions. Labels:
    ``images.labels_key``, else a 1-D ``labels`` / ``y`` member (or ``y_train`` beside
    ``x_train``) with one entry per image.
    """
    path = _require_path(path, "npz")
    with _np_load(path) as archive:
        try:
            members = {name: archive[name] for name in archive.files}
        except ValueError as exc:  # object arrays need pickle, which is refused
            raise DataError(
                f"{path}: cannot read a member: {_one_line(exc)} (fix: save plain numeric "
                "arrays with numpy.savez)"
            ) from None
    options = config.images
    if options.images_key is not None:
        images_key = options.images_key
        images = _npz_member(members, images_key, path, "images_key")
    else:
        candidates = [name for name, value in members.items() if value.ndim >= 3]
        if not candidates:
            shapes = ", ".join(f"{name} {value.shape}" for name, value in members.items())
            raise DataError(
                f"{path}: no member with 3 or more dimensions ({shapes or 'empty archive'}) "
                "(fix: set data.images.images_key)"
            )
        images_key = candidates[0]
        images = members[images_key]
    labels = None
    if options.labels_key is not None:
        labels = _npz_member(members, options.labels_key, path, "labels_key").ravel()
    else:
        paired = "y" + images_key[1:] if images_key[:1] in ("x", "X") else None
        for key in ("labels", "y", paired):
            value = members.get(key) if key else None
            if value is not None and value.ndim == 1 and len(value) == len(images):
                labels = value
                break
    if labels is not None and len(labels) != len(images):
        raise DataError(
            f"{path}: {len(labels)} labels for {len(images)} images (fix: set "
            "data.images.labels_key to the matching member)"
        )
    return _image_arrays(images, labels, config, f"{path}:{images_key}")


def _first_line_has_text(text: str, delimiter: str) -> bool:
    """Whether the first line holds a non-numeric token (i.e. is a header)."""
    first = text.splitlines()[0] if text else ""
    tokens = first.split() if delimiter == r"\s+" else first.split(delimiter)
    for token in tokens:
        try:
            float(token.strip().strip("\"'"))
        except ValueError:
            return True
    return False


def read_pixels_csv(config: DataConfig, path: Path | None) -> Arrays:
    """Read flattened images, one per CSV row, plus a label column (header detected).

    ``images.label_column`` (default -1, the last column; None for no labels) holds the label;
    the other columns are pixels reshaped to ``images.image_shape`` or an inferred square.
    """
    path = _require_path(path, "pixels_csv")
    options = config.csv
    head = _head_text(path, options.skip_rows)
    delimiter = options.delimiter or _sniff_delimiter(head, path)
    frame = _read_delimited(
        path,
        delimiter=delimiter,
        header=0 if _first_line_has_text(head, delimiter) else None,
        skip_rows=options.skip_rows,
        missing_values=(),
    )
    values = frame.to_numpy()
    if values.dtype.kind not in "iuf":
        raise DataError(
            f"{path}: pixel rows must be numbers (fix: use format 'csv' for tables, or remove "
            "the non-numeric columns)"
        )
    label_column = config.images.label_column
    labels = None
    if label_column is not None:
        if not -values.shape[1] <= label_column < values.shape[1]:
            raise DataError(
                f"{path}: data.images.label_column {label_column} is out of range for "
                f"{values.shape[1]} columns (fix: give a column index, or null for no labels)"
            )
        labels = values[:, label_column]
        values = np.delete(values, label_column % values.shape[1], axis=1)
    if values.dtype.kind == "f" and np.isnan(values).any():
        raise DataError(f"{path}: some pixel values are missing (fix: fill or drop those rows)")
    return _image_arrays(values, labels, config, str(path))


# ---------------------------------------------------------------------------------------- MATLAB


def read_mat(config: DataConfig, path: Path | None) -> Arrays:
    """Read a numeric array from a MATLAB v5 .mat file as images (one sample per row).

    Flat rows of P values are reshaped to ``images.image_shape`` if set, to the square side if
    P is square, or else zero-padded to the next square (4734 -> 69 x 69);
    ``metadata["flat_length"]`` keeps P so padding can be removed.
    """
    path = _require_path(path, "mat")
    try:
        contents = scipy.io.loadmat(path)
    except NotImplementedError:
        raise DataError(
            f"{path}: is a MATLAB v7.3 (HDF5) file, which gan-hpc cannot read (fix: re-save it "
            "in MATLAB with save(..., '-v7'), or convert it to .npy/.npz and set data.format "
            "to npy/npz)"
        ) from None
    except (ValueError, OSError, scipy.io.matlab.MatReadError) as exc:
        raise DataError(
            f"{path}: not a readable MATLAB v5 file: {_one_line(exc)} (fix: re-save it with "
            "save(..., '-v7'))"
        ) from None
    variables = [name for name in contents if not name.startswith("__")]
    options = config.mat
    if options.variable is not None:
        if options.variable not in variables:
            raise DataError(
                f"{path}: no variable '{options.variable}'{_suggest(options.variable, variables)}"
                f" (fix: set data.mat.variable to one of: {', '.join(variables)})"
            )
        name = options.variable
    elif len(variables) == 1:
        name = variables[0]
    else:
        raise DataError(
            f"{path}: holds {len(variables)} variables ({', '.join(variables) or 'none'}) "
            "(fix: set data.mat.variable to the one to read)"
        )
    array = np.asarray(contents[name])
    if array.dtype.kind not in "biuf":
        raise DataError(
            f"{path}: variable '{name}' is not a numeric array (dtype {array.dtype}) (fix: store "
            "the samples as a numeric matrix)"
        )
    array = np.moveaxis(np.atleast_2d(array), options.samples_axis, 0)
    source = f"{path}:{name}"
    metadata: dict[str, Any] = {}
    if array.ndim == 2:
        num_values = array.shape[1]
        metadata["flat_length"] = num_values
        side = math.isqrt(num_values)
        if not config.images.image_shape and side * side != num_values and options.pad_to_square:
            side += 1
            padded = np.zeros((len(array), side * side), dtype=array.dtype)
            padded[:, :num_values] = array
            array = padded
    samples = _to_nchw(np.ascontiguousarray(array), config, source)
    return Arrays(kind="image", samples=samples, source=source, metadata=metadata)
