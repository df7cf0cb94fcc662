"""Read one imaging study from an upload: DICOM, PNG/JPEG/BMP/TIFF or NIfTI.

``load_study(paths)`` takes files, folders and zips, types every file by its content
(never its name), keeps one study and returns its slices in anatomical order with
metadata, plus every file it set aside and why. See :mod:`ml.io.loader`.
"""

from ml.io.limits import LoadLimits
from ml.io.loader import UploadCheck, check_upload, load_study
from ml.io.nifti import read_nifti
from ml.io.raster import read_image, slice_order_key
from ml.io.types import LoadResult, Rejected, SliceInfo, StudyLoadError, StudyMetadata

__all__ = [
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
