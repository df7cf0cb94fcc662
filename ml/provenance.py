"""Where a model came from: the data it saw and the code that trained it.

No TensorFlow here: a model card can be written without loading Keras.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ml.datasets import ManifestRow


def training_fingerprint(rows: Sequence[ManifestRow]) -> str:
    """sha256 over the rows' (sha256, label) pairs in path order."""
    digest = hashlib.sha256()
    for row in sorted(rows, key=lambda r: r.path):
        digest.update(f"{row.sha256}\t{row.label}\n".encode())
    return digest.hexdigest()


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(  # noqa: S603 (fixed git arguments of this module)
            ["git", *args],  # noqa: S607 (git from PATH on purpose)
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def code_version() -> str:
    """``git rev-parse HEAD`` of this checkout, with ``+dirty`` when ml/ holds
    uncommitted changes (the commit alone would then not reproduce the model);
    "" outside a git checkout."""
    head = _git("rev-parse", "HEAD")
    if not head:
        return ""
    changed = _git("status", "--porcelain", "--untracked-files=no", "--", ".")
    return f"{head}+dirty" if changed else head
