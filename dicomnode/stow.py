"""DICOMweb STOW-RS (PS3.18 10.5): `POST /dicomweb/studies[/{StudyInstanceUID}]`
with a multipart/related; type="application/dicom" body, for senders that speak
HTTP. Token (`Authorization: Token x` or `Bearer x`) or session auth; clinicians
and admins may send (radiologists read studies, they do not bring them in).

The answer is application/dicom+json: ReferencedSOPSequence for the instances
stored in a study, FailedSOPSequence (with FailureReason) for the others; 200
when all were stored, 202 when some were, 409 when none was. A malformed request
gets 400/413/415 with a readable message and nothing is saved."""

from __future__ import annotations

import mmap
import tempfile
from pathlib import Path

from django.conf import settings
from django.http import JsonResponse
from django.utils.http import parse_header_parameters
from pydicom.dataset import Dataset
from rest_framework import authentication
from rest_framework.views import APIView

from accounts.audit import AuditContext
from accounts.models import Role
from accounts.permissions import HasRole

from . import ingest_stow

DICOM_JSON = "application/dicom+json"


class BearerTokenAuthentication(authentication.TokenAuthentication):
    """`Authorization: Bearer <token>`, as OHIF and dicomweb-client send it."""

    keyword = "Bearer"


class StowError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class StudyStoreApi(APIView):
    authentication_classes = [
        authentication.TokenAuthentication,
        BearerTokenAuthentication,
        authentication.SessionAuthentication,
    ]
    permission_classes = [HasRole.of(Role.CLINICIAN, Role.ADMIN)]
    parser_classes: list = []  # the body is read here, part by part

    def post(self, request, study_uid: str | None = None):
        with tempfile.TemporaryDirectory(prefix="stow-") as tmp:
            try:
                paths = _parts(request, Path(tmp))
            except StowError as exc:
                return _error(exc.status, exc.message)
            outcome = ingest_stow.stow_receive(
                user=request.user,
                paths=paths,
                study_uid=study_uid,
                audit=AuditContext.of(request),
            )
        return _answer(outcome, request)


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"detail": message}, status=status)


def _parts(request, folder: Path) -> list[Path]:
    """The request's parts as files in `folder`; StowError for a body that is not
    multipart/related application/dicom, too large, or empty."""
    boundary = _boundary(request.META.get("CONTENT_TYPE", ""))
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > settings.UPLOAD_MAX_BYTES:
        raise StowError(413, _too_large(length))
    body = folder / "body"
    with open(body, "wb") as out:
        for chunk in iter(lambda: request.read(1 << 20), b""):
            out.write(chunk)
            if out.tell() > settings.UPLOAD_MAX_BYTES:  # a body without a length
                raise StowError(413, _too_large(out.tell()))
    if body.stat().st_size == 0:
        raise StowError(400, "The request has no body: send DICOM instances.")
    with open(body, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=1) as data:
        return _split(data, boundary, folder)


def _too_large(size: int) -> str:
    return (
        f"The request is more than {size / 1024**2:.0f} MB; the limit is "
        f"{settings.UPLOAD_MAX_BYTES / 1024**2:.0f} MB."
    )


def _boundary(content_type: str) -> bytes:
    kind, params = parse_header_parameters(content_type)
    if kind.lower() != "multipart/related":
        raise StowError(
            415, 'Send multipart/related; type="application/dicom" (PS3.18 STOW-RS).'
        )
    part_type = params.get("type", "application/dicom").strip('"').lower()
    if part_type != "application/dicom":
        raise StowError(
            415,
            f"Parts of type {part_type} are not accepted; send application/dicom.",
        )
    if not params.get("boundary"):
        raise StowError(400, "The Content-Type names no multipart boundary.")
    return params["boundary"].strip('"').encode()


def _split(data, boundary: bytes, folder: Path) -> list[Path]:
    delimiter = b"--" + boundary
    start = data.find(delimiter)
    paths: list[Path] = []
    while start != -1:
        start += len(delimiter)
        if data[start : start + 2] == b"--":  # the closing delimiter
            break
        end = data.find(b"\r\n" + delimiter, start)
        if end == -1:
            raise StowError(
                400, "The multipart body is cut short (no closing boundary)."
            )
        paths.append(_part(data, start, end, folder, len(paths)))
        if len(paths) > settings.UPLOAD_MAX_FILES:
            raise StowError(413, f"More than {settings.UPLOAD_MAX_FILES} instances.")
        start = end + 2
    if not paths:
        raise StowError(400, "The request has no parts: send DICOM instances.")
    return paths


def _part(data, start: int, end: int, folder: Path, index: int) -> Path:
    head_end = data.find(b"\r\n\r\n", start, end)
    if head_end == -1:
        raise StowError(400, f"Part {index + 1} has no headers.")
    headers = bytes(data[start:head_end]).decode("latin-1").lower()
    for line in headers.split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip() == "content-type":
            kind = value.split(";")[0].strip()
            if kind != "application/dicom":
                raise StowError(
                    415, f"Part {index + 1} is {kind}; send application/dicom."
                )
    path = folder / f"part-{index:05d}.dcm"
    path.write_bytes(data[head_end + 4 : end])
    return path


def _answer(outcome: ingest_stow.StowOutcome, request) -> JsonResponse:
    stored = [i for i in outcome.instances if i.failure is None]
    failed = [i for i in outcome.instances if i.failure is not None]
    ds = Dataset()
    if len(outcome.studies) == 1:
        ds.RetrieveURL = request.build_absolute_uri(
            f"/dicomweb/studies/{outcome.studies[0].study_instance_uid}"
        )
    ds.ReferencedSOPSequence = [_item(i) for i in stored]
    ds.FailedSOPSequence = [_item(i) for i in failed]
    status = 200 if not failed else 202 if stored else 409
    response = JsonResponse(ds.to_json_dict(), status=status, content_type=DICOM_JSON)
    if failed:
        # FailureReason is a code; PS3.18 gives the words in a Warning header.
        reasons = sorted({f"part {_part_number(i)}: {i.reason}" for i in failed})
        words = "; ".join(reasons[:20]).replace('"', "'").encode("ascii", "replace")
        response["Warning"] = f'299 stroke-portal: "{words.decode()}"'
    return response


def _part_number(item: ingest_stow.StowInstance) -> int:
    return int(item.path.stem.rsplit("-", 1)[-1]) + 1


def _item(item: ingest_stow.StowInstance) -> Dataset:
    ref = Dataset()
    # Empty when the part could not be read at all.
    ref.ReferencedSOPClassUID = item.sop_class
    ref.ReferencedSOPInstanceUID = item.sop_uid
    if item.failure is not None:
        ref.FailureReason = item.failure
    return ref
