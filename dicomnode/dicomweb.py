"""DICOMweb read side (PS3.18) for viewers such as OHIF: QIDO-RS searches and
WADO-RS retrieves of the DICOM studies the caller may see, under /dicomweb/.

- Who: a session, or an API token sent as `Authorization: Token <key>` or
  `Authorization: Bearer <key>` (what OHIF sends). Scope is the diagnosis
  selectors' (a clinician sees their uploads and their site's studies); a study
  outside it, or not there, is a 404 like any other, and audited.
- What: only studies stored as DICOM files; answers are read from the files'
  headers (dicomnode.dicomweb_index), instances are the stored files themselves,
  frames their uncompressed pixels. Nothing is cached per user.
- Every answer that shows patient data writes one audit entry.
- Browsers on the origins in DICOMWEB_CORS_ORIGINS may call it (preflight answered
  here, without credentials); no other origin gets CORS headers.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import date

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.authentication import (
    SessionAuthentication,
    TokenAuthentication,
    get_authorization_header,
)
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.audit import audit_record
from accounts.permissions import HasRole

from . import dicomweb_index as index_
from . import dicomweb_media as media
from .dicomweb_query import (
    MAX_RESULTS,
    BadQuery,
    Query,
    date_bounds,
    matches,
    parse_query,
)

STUDY_UID, STUDY_DATE = "0020000D", "00080020"
PIXEL_DATA = "7FE00010"


class TokenOrBearerAuthentication(TokenAuthentication):
    """DRF's token, sent as `Token <key>` (the portal's API) or `Bearer <key>`
    (OHIF and most DICOMweb clients)."""

    def authenticate(self, request):
        words = get_authorization_header(request).split()
        if not words or words[0].lower() != b"bearer":
            return super().authenticate(request)
        if len(words) != 2:
            raise exceptions.AuthenticationFailed(
                "Invalid Authorization header: send 'Bearer <token>'."
            )
        try:
            key = words[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        return self.authenticate_credentials(key)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="dicomweb"'


class _ViewChoosesMediaType(BaseContentNegotiation):
    """DICOMweb views read Accept themselves (406 when they cannot give what it
    asks for); DRF renders only their errors, as JSON."""

    def select_parser(self, request, parsers):
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _cors_origin(request) -> str | None:
    origin = request.headers.get("Origin")
    return origin if origin and origin in settings.DICOMWEB_CORS_ORIGINS else None


@extend_schema(exclude=True)  # PS3.18 describes it; the API schema is the portal's
class DicomWebApi(APIView):
    authentication_classes = [TokenOrBearerAuthentication, SessionAuthentication]
    permission_classes = [HasRole]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _ViewChoosesMediaType

    def dispatch(self, request, *args, **kwargs):
        # A browser's CORS preflight carries no credentials: answered here.
        if request.method == "OPTIONS" and request.headers.get(
            "Access-Control-Request-Method"
        ):
            return _preflight(request)
        return super().dispatch(request, *args, **kwargs)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        origin = _cors_origin(request)
        if origin:
            response["Access-Control-Allow-Origin"] = origin
            response["Access-Control-Expose-Headers"] = "Content-Type, Warning"
        patch_vary_headers(response, ["Origin", "Accept", "Authorization"])
        return response

    def handle_exception(self, exc):
        if isinstance(exc, BadQuery):
            exc = exceptions.ParseError(str(exc))
        return super().handle_exception(exc)

    # --- what the views share -------------------------------------------------------
    def studies_url(self) -> str:
        return self.request.build_absolute_uri(reverse("dicomweb:studies"))

    def study(self, uid: str):
        """The caller's study with this UID and its index (NotVisible: 404)."""
        study = index_.dicom_study_for_user(user=self.request.user, uid=uid)
        return study, index_.index_for_study(study)

    def audit(self, action: str, study, **detail) -> None:
        audit_record(
            action=f"dicomweb.{action}", request=self.request, obj=study, detail=detail
        )


def _preflight(request) -> HttpResponse:
    response = HttpResponse(status=204)
    response["Allow"] = "GET, HEAD, POST, OPTIONS"
    origin = _cors_origin(request)
    if origin:
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Allow-Methods"] = "GET, HEAD, POST, OPTIONS"
        response["Access-Control-Allow-Headers"] = "Authorization, Accept, Content-Type"
        response["Access-Control-Max-Age"] = "600"
    patch_vary_headers(response, ["Origin"])
    return response


def _dicom_json(data, *, warning: str = "") -> Response:
    response = Response(data, content_type=media.DICOM_JSON)
    if warning:
        response["Warning"] = f'299 portal "{warning}"'
    return response


def _require_json(request) -> None:
    if not media.accepts_json(request.headers.get("Accept", "")):
        raise exceptions.NotAcceptable(
            "This resource is sent as application/dicom+json only."
        )


def _select(index, *, series: str = "", instance: str = "") -> list:
    """The study's instances, or one series' or one instance's (a 404 for a UID the
    study does not have)."""
    found = index.instances
    if series:
        if index.series_by_uid(series) is None:
            raise index_.not_found("series", series[:64])
        found = [i for i in found if i.series_uid == series]
    if instance:
        found = [i for i in found if i.sop_uid == instance]
        if not found:
            raise index_.not_found("instance", instance[:64])
    return found


# --- QIDO-RS -------------------------------------------------------------------------
def _included(query: Query, known: dict, path) -> dict:
    """Attributes `includefield` asks for beyond what the level answers with, from
    what the index holds or else from the header of `path`."""
    if not (query.include_all or query.include - known.keys()):
        return {}
    header = index_.full_header(path)
    if query.include_all:
        header.pop(PIXEL_DATA, None)
        return header
    return {t: header[t] for t in query.include if t in header and t not in known}


def _with_empty(attrs: dict, keywords) -> dict:
    """`attrs` with every attribute of `keywords` there, empty where missing: a
    QIDO answer carries all the attributes of its level (PS3.18 table 10.6.3-3)."""
    out = dict(attrs)
    for keyword in keywords:
        tag, empty = index_.element(keyword)
        out.setdefault(tag, empty)
    return out


def _study_result(index, *, base: str, query: Query) -> dict:
    instances = index.instances
    attrs = _with_empty(index.attrs, index_.STUDY_TAGS)
    attrs.update(
        dict(
            [
                index_.element("ModalitiesInStudy", index.modalities()),
                index_.element("NumberOfStudyRelatedSeries", len(index.series)),
                index_.element("NumberOfStudyRelatedInstances", len(instances)),
                index_.element("InstanceAvailability", "ONLINE"),
                index_.element("RetrieveURL", f"{base}/{index.uid}"),
            ]
        )
    )
    first = index.series[0]
    known = {**first.attrs, **first.instances[0].attrs, **attrs}
    extra = _included(query, known, first.instances[0].path)
    for tag in query.include - attrs.keys():
        if tag in known:
            attrs[tag] = known[tag]
    return dict(sorted({**extra, **attrs}.items()))


def _series_result(index, series, *, base: str, query: Query) -> dict:
    attrs = _with_empty(series.attrs, index_.SERIES_TAGS)
    attrs.update(
        dict(
            [
                index_.element("StudyInstanceUID", index.uid),
                index_.element("NumberOfSeriesRelatedInstances", len(series.instances)),
                index_.element("InstanceAvailability", "ONLINE"),
                index_.element(
                    "RetrieveURL", f"{base}/{index.uid}/series/{series.uid}"
                ),
            ]
        )
    )
    known = {**index.attrs, **series.instances[0].attrs, **attrs}
    extra = _included(query, known, series.instances[0].path)
    for tag in query.include - attrs.keys():
        if tag in known:
            attrs[tag] = known[tag]
    return dict(sorted({**extra, **attrs}.items()))


def _instance_result(index, instance, *, base: str, query: Query) -> dict:
    series = index.series_by_uid(instance.series_uid)
    url = f"{base}/{index.uid}/series/{series.uid}/instances/{instance.sop_uid}"
    attrs = _with_empty({**series.attrs, **instance.attrs}, index_.INSTANCE_TAGS)
    attrs.update(
        dict(
            [
                index_.element("StudyInstanceUID", index.uid),
                index_.element("InstanceAvailability", "ONLINE"),
                index_.element("RetrieveURL", url),
            ]
        )
    )
    known = {**index.attrs, **attrs}
    extra = _included(query, known, instance.path)
    for tag in query.include - attrs.keys():
        if tag in known:
            attrs[tag] = known[tag]
    return dict(sorted({**extra, **attrs}.items()))


def _page(items: list, query: Query, *, skip: int | None = None) -> tuple[list, str]:
    """One page of results (after `skip` of them: the offset, unless the database
    skipped them already), and the Warning to send when there are more than the
    portal sends at once."""
    skip = query.offset if skip is None else skip
    page = items[skip : skip + query.limit]
    more = len(items) > skip + query.limit
    if more and (query.truncated_limit or query.limit == MAX_RESULTS):
        return page, "There are more results: ask again with a larger offset."
    return page, ""


class StudySearchApi(DicomWebApi):
    """GET studies: the caller's DICOM studies, urgent first (worklist order)."""

    def get(self, request):
        _require_json(request)
        query = parse_query(request.query_params, level="studies")
        studies = _prefiltered(index_.dicom_studies_for_user(user=request.user), query)
        ids = list(studies.values_list("pk", flat=True))
        skip = query.offset
        if not set(query.matches) - {STUDY_UID, STUDY_DATE}:
            # The database did all the matching: the page is cut there.
            ids, skip = ids[query.offset : query.offset + query.limit + 1], 0
        indexes = index_.study_indexes(index_.study_files(ids))
        base, found = self.studies_url(), []
        for pk in ids:
            if len(found) > skip + query.limit:
                break  # one more than the page: enough to know there are more
            if pk not in indexes:
                continue  # no stored file
            result = _study_result(indexes[pk], base=base, query=query)
            if matches(result, query):
                found.append((pk, result))
        page, warning = _page(found, query, skip=skip)
        audit_record(
            action="dicomweb.search",
            request=request,
            detail={
                "level": "studies",
                "count": len(page),
                "studies": [p for p, _ in page],
            },
        )
        return _dicom_json([r for _, r in page], warning=warning)


def _prefiltered(studies, query: Query):
    """What the database can match itself: StudyInstanceUID and StudyDate."""
    uids = query.matches.get(STUDY_UID)
    if uids:
        studies = studies.filter(
            study_instance_uid__in=[
                u.strip() for u in uids.replace("\\", ",").split(",")
            ]
        )
    dates = query.matches.get(STUDY_DATE)
    if dates:
        start, end = date_bounds(dates)
        if start != "00000000":
            studies = studies.filter(study_date__gte=_day(start))
        if end != "99999999":
            studies = studies.filter(study_date__lte=_day(end))
    return studies


def _day(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:]))


class SeriesSearchApi(DicomWebApi):
    """GET studies/{study}/series."""

    def get(self, request, study: str):
        _require_json(request)
        query = parse_query(request.query_params, level="series")
        row, index = self.study(study)
        base = self.studies_url()
        results = [
            _series_result(index, s, base=base, query=query) for s in index.series
        ]
        page, warning = _page([r for r in results if matches(r, query)], query)
        self.audit("search", row, level="series", count=len(page))
        return _dicom_json(page, warning=warning)


class InstanceSearchApi(DicomWebApi):
    """GET studies/{study}/instances and studies/{study}/series/{series}/instances."""

    def get(self, request, study: str, series: str = ""):
        _require_json(request)
        query = parse_query(request.query_params, level="instances")
        row, index = self.study(study)
        base = self.studies_url()
        results = [
            _instance_result(index, i, base=base, query=query)
            for i in _select(index, series=series)
        ]
        page, warning = _page([r for r in results if matches(r, query)], query)
        self.audit("search", row, level="instances", series=series, count=len(page))
        return _dicom_json(page, warning=warning)


# --- WADO-RS metadata -----------------------------------------------------------------
def _metadata(index, instance, *, base: str) -> dict:
    """The instance's header as DICOM JSON; its pixel data is a BulkDataURI to the
    frames resource (PS3.18 8.6.1.1: no bulk data in metadata)."""
    header = index_.full_header(instance.path)
    url = (
        f"{base}/{index.uid}/series/{instance.series_uid}/instances/{instance.sop_uid}"
    )
    frames = ",".join(str(n) for n in range(1, instance.frames + 1))
    bits = index_.first_value(instance.attrs, "00280100") or 16
    compressed = instance.transfer_syntax not in (
        media.EXPLICIT_VR_LITTLE_ENDIAN,
        media.IMPLICIT_VR_LITTLE_ENDIAN,
    )
    header[PIXEL_DATA] = {
        "vr": "OB" if compressed or bits <= 8 else "OW",
        "BulkDataURI": f"{url}/frames/{frames}",
    }
    tag, syntax = index_.element("AvailableTransferSyntaxUID", instance.transfer_syntax)
    header[tag] = syntax
    return dict(sorted(header.items()))


def _json_stream(items: Iterator[dict]) -> Iterator[bytes]:
    """A JSON array written one element at a time: a 300-slice study's metadata is
    never held whole."""
    yield b"["
    for n, item in enumerate(items):
        yield (b"," if n else b"") + json.dumps(item, separators=(",", ":")).encode()
    yield b"]"


class MetadataApi(DicomWebApi):
    """GET .../metadata of a study, a series or an instance."""

    def get(self, request, study: str, series: str = "", instance: str = ""):
        _require_json(request)
        row, index = self.study(study)
        chosen = _select(index, series=series, instance=instance)
        self.audit(
            "metadata", row, series=series, instance=instance, instances=len(chosen)
        )
        base = self.studies_url()
        body = _json_stream(_metadata(index, i, base=base) for i in chosen)
        return StreamingHttpResponse(body, content_type=media.DICOM_JSON)


# --- WADO-RS retrieve ------------------------------------------------------------
class RetrieveApi(DicomWebApi):
    """GET a study, a series or an instance: the stored DICOM files, as
    multipart/related; type="application/dicom", streamed file by file."""

    def get(self, request, study: str, series: str = "", instance: str = ""):
        row, index = self.study(study)
        chosen = _select(index, series=series, instance=instance)
        stored = {i.transfer_syntax for i in chosen}
        wanted = media.dicom_syntax(request.headers.get("Accept", ""), stored)
        if wanted is None:
            raise exceptions.NotAcceptable(
                'Instances are sent as multipart/related; type="application/dicom", '
                "as stored (transfer-syntax=*) or in Explicit VR Little Endian "
                f"({media.EXPLICIT_VR_LITTLE_ENDIAN})."
            )
        self.audit(
            "retrieve", row, series=series, instance=instance, instances=len(chosen)
        )
        boundary = uuid.uuid4().hex
        parts = (
            (
                "application/dicom; transfer-syntax="
                + (i.transfer_syntax if wanted == "*" else wanted),
                media.instance_bytes(i.path, stored=i.transfer_syntax, wanted=wanted),
            )
            for i in chosen
        )
        return StreamingHttpResponse(
            media.multipart(parts, boundary),
            content_type='multipart/related; type="application/dicom"; '
            f"boundary={boundary}",
        )


class FramesApi(DicomWebApi):
    """GET .../instances/{instance}/frames/{1,2,…}: each frame's pixels,
    uncompressed (Explicit VR Little Endian), as multipart/related;
    type="application/octet-stream"."""

    def get(self, request, study: str, series: str, instance: str, frames: str):
        if not media.frames_acceptable(request.headers.get("Accept", "")):
            raise exceptions.NotAcceptable(
                "Frames are sent uncompressed only: multipart/related; "
                'type="application/octet-stream" (transfer-syntax=* or '
                f"{media.EXPLICIT_VR_LITTLE_ENDIAN})."
            )
        try:
            numbers = media.frame_numbers(frames)
        except ValueError as exc:
            raise exceptions.ParseError(f"Bad frame list: {exc}.") from None
        row, index = self.study(study)
        chosen = _select(index, series=series, instance=instance)[0]
        try:
            data = media.frames(chosen.path, numbers)
        except IndexError as exc:
            raise index_.not_found("frame", f"{instance[:50]}/{exc.args[0]}") from None
        self.audit("retrieve", row, series=series, instance=instance, frames=numbers)
        boundary = uuid.uuid4().hex
        part = "application/octet-stream; transfer-syntax=" + (
            media.EXPLICIT_VR_LITTLE_ENDIAN
        )
        body = b"".join(media.multipart(((part, [d]) for d in data), boundary))
        return HttpResponse(
            body,
            content_type='multipart/related; type="application/octet-stream"; '
            f"boundary={boundary}",
        )
