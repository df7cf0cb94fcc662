"""Load weights a user supplies into a freshly built model (nothing is downloaded)."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import keras

WEIGHT_SUFFIXES = (".weights.h5", ".keras", ".h5")


def load_user_weights(
    model: keras.Model, backbones: dict[str, keras.Model], path: Path
) -> str:
    """Load ``path`` into ``model``, or else into the one backbone it fits.

    A whole-model file is tried first; then each backbone (for ResNet50/MobileNetV2
    ImageNet "notop" files the user has on disk). Returns what was loaded
    (``"model"`` or the backbone name). Raises ValueError when the file is missing,
    of an unknown kind, or its shapes fit neither.
    """
    if not path.is_file():
        raise ValueError(f"weights file {path} does not exist")
    if not path.name.endswith(WEIGHT_SUFFIXES):
        raise ValueError(
            f"weights file {path.name} must end with one of {WEIGHT_SUFFIXES}"
        )
    errors = []
    for target, net in [("model", model), *backbones.items()]:
        try:
            _load_into(net, path)
        except (ValueError, KeyError, TypeError, OSError) as exc:
            errors.append(f"{target}: {_first_line(exc)}")
            continue
        return target
    raise ValueError(
        f"weights file {path.name} does not fit model {model.name!r} "
        f"(shapes or layer count differ): " + "; ".join(errors)
    )


def _load_into(net: keras.Model, path: Path) -> None:
    if path.name.endswith(".keras"):
        source = keras.saving.load_model(path, compile=False, safe_mode=True)
        _copy_weights(source, net)
        return
    _check_shapes(_h5_shapes(path), [tuple(w.shape) for w in net.weights])
    with warnings.catch_warnings():
        # Keras only warns when parts of a file match no layer; that is a misfit here.
        warnings.simplefilter("error", UserWarning)
        try:
            net.load_weights(str(path))
        except UserWarning as exc:
            raise ValueError(str(exc)) from exc


def _h5_shapes(path: Path) -> list[tuple[int, ...]]:
    import h5py

    shapes: list[tuple[int, ...]] = []
    with h5py.File(path, "r") as handle:
        handle.visititems(
            lambda _, obj: (
                shapes.append(tuple(obj.shape))
                if isinstance(obj, h5py.Dataset)
                else None
            )
        )
    return shapes


def _check_shapes(stored: list[tuple], wanted: list[tuple]) -> None:
    """Same number of arrays and the same multiset of shapes, else ValueError."""
    if len(stored) != len(wanted):
        raise ValueError(f"{len(stored)} weight arrays, the model has {len(wanted)}")
    extra, missing = (
        Counter(stored) - Counter(wanted),
        Counter(wanted) - Counter(stored),
    )
    if extra or missing:
        raise ValueError(
            f"file has shapes {sorted(extra)[:3]} where the model has "
            f"{sorted(missing)[:3]}"
        )


def _copy_weights(source: keras.Model, target: keras.Model) -> None:
    src, dst = source.get_weights(), target.get_weights()
    _check_shapes([a.shape for a in src], [b.shape for b in dst])
    for i, (a, b) in enumerate(zip(src, dst, strict=True)):
        if a.shape != b.shape:
            raise ValueError(f"weight {i} has shape {a.shape}, expected {b.shape}")
    target.set_weights(src)


def _first_line(exc: BaseException) -> str:
    text = " ".join(line.strip() for line in str(exc).strip().splitlines()[:3])
    return text[:300] or type(exc).__name__
