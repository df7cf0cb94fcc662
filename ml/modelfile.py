"""Model files: a folder (or one zip archive of it) holding the weights and a
``model.json`` that says what the model is, how to feed it and how far to trust it.

The portal stores any model that passes `model_card_load` and `model_files_verify`;
training writes models with `model_card_save`. No TensorFlow here: reading a card
must stay cheap.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

MODEL_JSON = "model.json"
FORMAT_VERSION = 1
TASK_CLASSES = {
    "binary": ("normal", "stroke"),
    "type": ("normal", "ischemic", "hemorrhagic"),
}
MODALITIES = ("CT", "MR")
_MAX_ARCHIVE_BYTES = 2 * 1024**3


class ModelFileError(ValueError):
    """A model folder or archive that cannot be used, with the reason."""


@dataclass
class ModelCard:
    """What `model.json` holds.

    ``input_shape`` is (H, W, C) for slice models and (D, H, W, C) for study models
    (``study_level``), D may be None. ``files`` maps each file of the model to its
    sha256; ``threshold`` applies to the calibrated stroke probability.
    """

    name: str
    version: str
    architecture: str
    task: str
    classes: list[str]
    modality: str
    input_shape: list[int | None]
    preprocessing: dict[str, Any]
    threshold: float = 0.5
    temperature: float = 1.0
    study_level: bool = False
    files: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    training_data: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    code_version: str = ""
    demo: bool = False
    description: str = ""
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def channels(self) -> int:
        return int(self.input_shape[-1] or 1)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        known = {f.name for f in dataclasses.fields(cls)}
        missing = [
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
            and f.name not in data
        ]
        if missing:
            raise ModelFileError(f"{MODEL_JSON} lacks {', '.join(missing)}")
        card = cls(**{k: v for k, v in data.items() if k in known})
        model_card_validate(card)
        return card


def model_card_validate(card: ModelCard) -> None:
    """Raise ModelFileError naming the first field that makes no sense."""
    if card.format_version > FORMAT_VERSION:
        raise ModelFileError(
            f"model format {card.format_version} is newer than this code understands "
            f"({FORMAT_VERSION}); update the portal"
        )
    if card.task not in TASK_CLASSES:
        raise ModelFileError(f"task {card.task!r} is not one of {sorted(TASK_CLASSES)}")
    if tuple(card.classes) != TASK_CLASSES[card.task]:
        raise ModelFileError(
            f"classes {card.classes} do not match task {card.task!r} "
            f"(expected {list(TASK_CLASSES[card.task])})"
        )
    if card.modality not in MODALITIES:
        raise ModelFileError(f"modality {card.modality!r} is not one of {MODALITIES}")
    if len(card.input_shape) not in (3, 4) or card.input_shape[-1] not in (1, 2, 3):
        raise ModelFileError(
            f"input_shape {card.input_shape} must be (H, W, C) or (D, H, W, C) "
            "with 1 to 3 channels (2: a segmentation model's slice and brain mask)"
        )
    if not 0.0 < float(card.threshold) < 1.0:
        raise ModelFileError(f"threshold {card.threshold} must lie between 0 and 1")
    if not float(card.temperature) > 0.0:
        raise ModelFileError(f"temperature {card.temperature} must be positive")
    if not card.files:
        raise ModelFileError(f"{MODEL_JSON} lists no weight files")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_card_save(card: ModelCard, folder: str | Path) -> Path:
    """Fill in ``files`` (sha256 of every file in the folder except model.json),
    ``created_at`` when empty, validate, and write ``folder/model.json``."""
    folder = Path(folder)
    card.files = {
        p.name: file_sha256(p)
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != MODEL_JSON
    }
    card.created_at = card.created_at or dt.datetime.now(dt.UTC).isoformat(
        timespec="seconds"
    )
    model_card_validate(card)
    path = folder / MODEL_JSON
    path.write_text(json.dumps(card.to_dict(), indent=2, sort_keys=True) + "\n")
    return path


def model_card_load(folder: str | Path) -> ModelCard:
    """Read and validate ``folder/model.json`` (no weights are opened)."""
    path = Path(folder) / MODEL_JSON
    if not path.is_file():
        raise ModelFileError(
            f"{folder} holds no {MODEL_JSON}; it is not a model folder"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{MODEL_JSON} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelFileError(f"{MODEL_JSON} must hold a JSON object")
    try:
        return ModelCard.from_dict(data)
    except TypeError as exc:
        raise ModelFileError(
            f"{MODEL_JSON} has a field of the wrong type: {exc}"
        ) from exc


def model_files_verify(folder: str | Path, card: ModelCard) -> None:
    """Refuse a model whose files are missing or differ from their recorded sha256
    (a tampered or half-copied model)."""
    folder = Path(folder)
    for name, expected in card.files.items():
        path = folder / name
        if not path.is_file():
            raise ModelFileError(f"model file {name} is missing from {folder}")
        if file_sha256(path) != expected:
            raise ModelFileError(
                f"model file {name} does not match its sha256 in {MODEL_JSON}: "
                "it was changed or damaged after the model was saved"
            )


def model_archive_pack(folder: str | Path, archive: str | Path) -> Path:
    """Zip a model folder into one file (model.json and weights at its top level)."""
    folder, archive = Path(folder), Path(archive)
    model_card_load(folder)
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.iterdir()):
            if path.is_file():
                zf.write(path, arcname=path.name)
    return archive


def model_archive_unpack(archive: str | Path, dest: str | Path) -> Path:
    """Extract a model archive into ``dest`` safely (flat names only, bounded size)
    and return the folder; the card is validated and the files verified."""
    dest = Path(dest)
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise ModelFileError(f"{Path(archive).name} is not a zip archive") from exc
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if sum(m.file_size for m in members) > _MAX_ARCHIVE_BYTES:
            raise ModelFileError("model archive is larger than 2 GiB once unpacked")
        dest.mkdir(parents=True, exist_ok=True)
        for member in members:
            name = PurePosixPath(member.filename)
            if len(name.parts) != 1 or name.name.startswith("."):
                raise ModelFileError(
                    f"model archive member {member.filename!r} is not a plain file name"
                )
            (dest / name.name).write_bytes(zf.read(member))
    card = model_card_load(dest)
    model_files_verify(dest, card)
    return dest
