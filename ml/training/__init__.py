"""Training: ``train_model(manifest=..., data_root=..., config=TrainConfig(...),
out_dir=...) -> TrainResult``.

Importing this package is cheap (no TensorFlow): the portal may build a
:class:`TrainConfig` in a web process; ``train_model`` loads Keras when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ml.training.config import ProgressCallback, TrainConfig, TrainResult

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ml.datasets import ManifestRow


def train_model(
    *,
    manifest: str | Path | Sequence[ManifestRow],
    data_root: str | Path,
    config: TrainConfig,
    out_dir: str | Path,
    progress: ProgressCallback | None = None,
) -> TrainResult:
    """See :func:`ml.training.run.train_model` (imported lazily: it loads Keras)."""
    from ml.training.run import train_model as run

    return run(
        manifest=manifest,
        data_root=data_root,
        config=config,
        out_dir=out_dir,
        progress=progress,
    )


__all__ = ["ProgressCallback", "TrainConfig", "TrainResult", "train_model"]
