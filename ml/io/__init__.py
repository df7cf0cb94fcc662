"""Read one imaging study from an upload: DICOM, PNG/JPEG/BMP/TIFF or NIfTI.

``load_study(paths)`` takes files, folders and zips (a list, or one path), types
every file by its content (never its name), keeps one study and returns
:class:`LoadResult`: a (D, H, W) float32 volume ordered inferior to superior, one
:class:`SliceInfo` per slice, :class:`StudyMetadata`, and every file it set aside
with the reason (:class:`Rejected`). When nothing usable is left it raises
:class:`StudyLoadError`, whose message names the first files and reasons.
``check_upload`` does the same validation for a web request: from headers and a
spot check of a few slices, without building the volume; it returns
:class:`UploadCheck`, a LoadResult without the volume.

Conventions:

- ``metadata.units``: "HU" for CT DICOM (rescale slope/intercept applied) and for
  NIfTI whose values look like CT; "intensity" for MR and other NIfTI; "windowed8"
  for 8-bit images, "raw16" for 16-bit ones; :data:`UNKNOWN_UNITS` for a NIfTI that
  check_upload has not decoded. Nothing is normalised here.
- Axial slices are laid out as a radiologist views them: row 0 anterior, column 0
  the patient's right (DICOM pixel data is kept as stored, which for a standard
  axial series is the same layout; NIfTI is reoriented to it).
- Slices whose longest side passes ``LoadLimits.max_side`` (1024) are read reduced
  to it by area averaging, one at a time (the full-size volume never exists);
  ``metadata.stored_size`` and ``metadata.reduction`` say so, ``pixel_spacing_mm``
  is that of the reduced slices, and a warning names both sizes.
  ``LoadLimits.max_study_pixels`` caps the study's pixels as read.
- Names are what the user uploaded, cleaned (``ml.io.text.clean_name``):
  ``folder/file``, ``upload.zip/member``, or what ``names`` maps an input path to.
- Operating-system clutter (``.DS_Store``, ``__MACOSX/``, dot-files, ``Thumbs.db``)
  is skipped silently.
"""

from ml.io.limits import LoadLimits
from ml.io.loader import UploadCheck, check_upload, load_study
from ml.io.nifti import read_nifti
from ml.io.raster import read_image, slice_order_key
from ml.io.types import (
    UNKNOWN_UNITS,
    LoadResult,
    Rejected,
    SliceInfo,
    StudyLoadError,
    StudyMetadata,
)

__all__ = [
    "UNKNOWN_UNITS",
    "LoadLimits",
    "LoadResult",
    "Rejected",
    "SliceInfo",
    "StudyLoadError",
    "StudyMetadata",
    "UploadCheck",
    "check_upload",
    "load_study",
    "read_image",
    "read_nifti",
    "slice_order_key",
]
