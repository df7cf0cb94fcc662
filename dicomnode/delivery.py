"""Results back to the PACS: for every registered destination, the study's report as
Encapsulated PDF, its key images as Secondary Capture and its structured report,
sent by C-STORE when the study becomes ready and again when its reading changes.

One Delivery row per object kind, destination and revision (the AI result or the
reading it was made for) records where each stands. Rows are written with the event
that calls for them (in the reading's own transaction), so a broker or a peer that
is down loses nothing: the sweep sends every pending row whose time has come. A send
claims its row by pushing `next_attempt_at` a lease into the future with a guarded
UPDATE, so two workers (a redelivered message, the sweep) never send it at once.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.pdu import A_ASSOCIATE_RJ
from pynetdicom.status import GENERAL_STATUS, STORAGE_SERVICE_CLASS_STATUS

from accounts.audit import AuditContext, audit_record
from diagnosis.models import Review, Study, StudyStatus
from reports import services as report_services
from stroke_portal.infrastructure import INFRASTRUCTURE_ERRORS

from .models import Delivery, DeliveryKind, DeliveryState, DicomNode
from .queue import delivery_enqueue

logger = logging.getLogger(__name__)

#: How long a claimed send may take before the sweep may try it again (a worker
#: that died mid-send): well above the network timeouts below.
SEND_LEASE = timedelta(minutes=5)
NETWORK_TIMEOUT = 30  # seconds, per DIMSE message and for the association
SUCCESS = "0x0000 Success"
SWEEP_BATCH = 500
RESEND = "dicomnode.delivery_resend"


# --- which deliveries a study needs ---------------------------------------------
def _kinds(study: Study) -> list[str]:
    # A study the model declined still has its report; it has no key images and
    # no AI finding to structure.
    if study.current_result is None:
        return [DeliveryKind.PDF]
    return [DeliveryKind.PDF, DeliveryKind.KEY_IMAGES, DeliveryKind.SR]


def _destinations():
    return DicomNode.objects.filter(active=True, receives_results=True)


def _deliveries_create(*, study: Study, revision: str) -> list[int]:
    """Pending deliveries of `revision` to every destination, enqueued once the
    caller's transaction commits. Returns the ids of the rows it created: a
    repeated event finds them made and creates (and sends) nothing new."""
    created_ids = []
    now = timezone.now()
    for destination in _destinations():
        for kind in _kinds(study):
            delivery, created = Delivery.objects.get_or_create(
                study=study,
                destination=destination,
                kind=kind,
                revision=revision,
                defaults={"next_attempt_at": now},
            )
            if created:
                created_ids.append(delivery.pk)
    for delivery_id in created_ids:
        delivery_enqueue(delivery_id=delivery_id)
    return created_ids


def deliveries_for_ready_study(*, study_id: int) -> list[int]:
    """The study has a new AI result (or the model declined it): send its objects."""
    study = Study.objects.filter(pk=study_id, status=StudyStatus.READY).first()
    if study is None:
        return []
    result = study.current_result
    revision = f"result-{result.pk}" if result is not None else "declined"
    return _deliveries_create(study=study, revision=revision)


def deliveries_for_review(*, review: Review) -> list[int]:
    """A reading was saved (inside its transaction): send the objects that carry it,
    once it commits."""
    return _deliveries_create(study=review.study, revision=f"review-{review.pk}")


# --- sending one delivery ---------------------------------------------------------
@dataclass(frozen=True)
class SendOutcome:
    """What a send came to: `status` is the peer's ("0x0000 Success", "0xA700
    Refused: Out of Resources") or why there was no answer, in words."""

    sent: bool
    status: str
    sop_instance_uid: str = ""


def delivery_send(*, delivery_id: int) -> Delivery | None:
    """Send one pending delivery whose time has come; record what the peer said.
    None when there was nothing to do (sent, failed, not due, or claimed by another
    worker): safe to call twice."""
    now = timezone.now()
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    claimed = Delivery.objects.filter(
        due, pk=delivery_id, state=DeliveryState.PENDING
    ).update(next_attempt_at=now + SEND_LEASE)
    if not claimed:
        return None
    delivery = Delivery.objects.select_related("destination", "study").get(
        pk=delivery_id
    )
    outcome = _attempt(delivery)
    _record(delivery, outcome)
    delivery.refresh_from_db()
    return delivery


def _attempt(delivery: Delivery) -> SendOutcome:
    node = delivery.destination
    if not (node.active and node.receives_results and node.host and node.port):
        return SendOutcome(False, "Destination has no host and port to send to")
    try:
        datasets = _objects(delivery)
    except report_services.ReportUnavailable:
        return SendOutcome(False, "The study has no result to send (not ready)")
    except INFRASTRUCTURE_ERRORS:
        raise  # the task retries; the lease lets the sweep take it up after
    except Exception:
        # A bug in building the object: say so without a trace, and retry (counted)
        # in case it came from a passing state of the study.
        logger.exception(
            "building %s of delivery %s failed", delivery.kind, delivery.pk
        )
        return SendOutcome(False, f"Could not build the {delivery.get_kind_display()}")
    if not datasets:
        return SendOutcome(True, "Nothing to send: the study has no key images")
    return store_scu(datasets, host=node.host, port=node.port, called_ae=node.ae_title)


def _objects(delivery: Delivery) -> list[Dataset]:
    """The objects of the study's current state (its latest result and reading):
    a late send of an older revision sends what the PACS should show now. Their
    UIDs come from the report of that state, as the report's DICOM download's do."""
    _, objects = report_services.report_dicom_objects(study=delivery.study)
    return objects[delivery.kind]


def _record(delivery: Delivery, outcome: SendOutcome) -> None:
    now = timezone.now()
    attempts = delivery.attempts + 1
    fields: dict = {"attempts": F("attempts") + 1, "peer_status": outcome.status[:200]}
    if outcome.sent:
        fields.update(
            state=DeliveryState.SENT,
            sent_at=now,
            sop_instance_uid=outcome.sop_instance_uid,
            next_attempt_at=None,
        )
    elif attempts >= settings.DICOM_SEND_ATTEMPTS:
        fields.update(state=DeliveryState.FAILED, next_attempt_at=None)
    else:
        wait = settings.DICOM_SEND_RETRY_SECONDS * 2 ** (attempts - 1)
        fields.update(next_attempt_at=now + timedelta(seconds=wait))
    Delivery.objects.filter(pk=delivery.pk, state=DeliveryState.PENDING).update(
        **fields
    )
    log = logger.info if outcome.sent else logger.warning
    log(
        "delivery %s (%s of study %s to %s), attempt %s: %s",
        delivery.pk,
        delivery.kind,
        delivery.study_id,
        delivery.destination.ae_title,
        attempts,
        outcome.status,
    )


# --- C-STORE ------------------------------------------------------------------------
def status_words(code: int) -> str:
    """ "0xA700 Refused: Out of Resources" for a C-STORE status code."""
    category, words = STORAGE_SERVICE_CLASS_STATUS.get(
        code, GENERAL_STATUS.get(code, ("", ""))
    )
    words = words or category or "Unknown status"
    return f"0x{code:04X} {words}"


def store_scu(
    datasets: list[Dataset], *, host: str, port: int, called_ae: str
) -> SendOutcome:
    """Send `datasets` in one association (calling AE: DICOM_AE_TITLE). Sent only
    when the peer answered Success (or a warning, which stores) for every one."""
    ae = AE(ae_title=settings.DICOM_AE_TITLE)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = NETWORK_TIMEOUT
    ae.connection_timeout = 10
    for sop_class in sorted({str(ds.SOPClassUID) for ds in datasets}):
        ae.add_requested_context(
            sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
        )
    rejection: list[str] = []
    assoc = ae.associate(
        host,
        port,
        ae_title=called_ae,
        evt_handlers=[(evt.EVT_PDU_RECV, _on_pdu, [rejection])],
    )
    if not assoc.is_established:
        return SendOutcome(False, _no_association(host, port, assoc, rejection))
    try:
        return _store_all(assoc, datasets)
    finally:
        assoc.release()


def _on_pdu(event, rejection: list[str]) -> None:
    # EVT_REJECTED carries no reason; the A-ASSOCIATE-RJ PDU does.
    pdu = event.pdu
    if isinstance(pdu, A_ASSOCIATE_RJ):
        rejection.append(f"{pdu.result_str}: {pdu.reason_str}")


def _store_all(assoc, datasets: list[Dataset]) -> SendOutcome:
    for ds in datasets:
        status = assoc.send_c_store(ds)
        if "Status" not in status:  # no answer: timeout, abort, bad context
            return SendOutcome(False, "No C-STORE response from the peer")
        code = int(status.Status)
        # 0xB000-0xB007: stored with a warning (coercion, elements discarded).
        if code != 0x0000 and not (0xB000 <= code <= 0xBFFF):
            return SendOutcome(False, status_words(code))
    return SendOutcome(True, SUCCESS, str(datasets[0].SOPInstanceUID))


def _no_association(host: str, port: int, assoc, rejection: list[str]) -> str:
    """Why there is no association, in words a PACS admin acts on."""
    if rejection:
        return f"Association rejected ({rejection[0]})"[:200]
    try:
        with socket.create_connection((host, port), timeout=5):
            pass
    except ConnectionRefusedError:
        return f"No association: connection refused by {host}:{port}"
    except TimeoutError:
        return f"No association: {host}:{port} did not answer (timed out)"
    except OSError as error:
        return f"No association: {host}:{port} unreachable ({error.strerror or error})"
    return "No association: the peer closed or aborted it"


# --- the sweep and "send again" ---------------------------------------------------
def deliveries_sweep() -> int:
    """Enqueue every pending delivery whose next attempt is due (after a peer was
    down, a broker lost the message or a worker died mid-send). Returns how many."""
    now = timezone.now()
    due = Delivery.objects.filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
        state=DeliveryState.PENDING,
    ).order_by("next_attempt_at")
    ids = list(due.values_list("pk", flat=True)[:SWEEP_BATCH])
    for delivery_id in ids:
        delivery_enqueue(delivery_id=delivery_id)
    return len(ids)


def deliveries_resend(*, study: Study, context: AuditContext) -> int:
    """An admin's "Send again": the study's failed deliveries become pending with
    their attempts counted afresh, and are sent now. Audited. Returns how many."""
    now = timezone.now()
    failed = Delivery.objects.filter(study=study, state=DeliveryState.FAILED)
    ids = list(failed.values_list("pk", flat=True))
    Delivery.objects.filter(pk__in=ids, state=DeliveryState.FAILED).update(
        state=DeliveryState.PENDING, attempts=0, next_attempt_at=now
    )
    for delivery_id in ids:
        delivery_enqueue(delivery_id=delivery_id)
    audit_record(action=RESEND, context=context, obj=study, detail={"deliveries": ids})
    return len(ids)
