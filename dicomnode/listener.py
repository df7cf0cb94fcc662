"""The portal's DICOM listener: Verification (C-ECHO) and Storage (C-STORE) SCP
under the portal's AE title, for the nodes an admin registered.

An association is accepted only from a registered, active node that sends
studies (its calling AE title, and its host when one is set); anything else gets
A-ASSOCIATE-RJ (calling AE title not recognised) and an audit entry. Each
instance goes to dicomnode.ingest; a timer in the same process completes the
collections that have gone quiet, so a study is queued about one second after
its quiet time rather than at the next beat.

Runs as its own process (`manage.py dicom_listen`); tests start it in a thread.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import close_old_connections, connections
from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from . import ingest

logger = logging.getLogger(__name__)

#: What a scanner or PACS may send: the uncompressed syntaxes first (preferred),
#: then the compressed ones ml.io decodes (pylibjpeg, pyjpegls), so that a sender
#: never has to decompress a study for us.
TRANSFER_SYNTAXES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGLosslessSV1,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
]
#: How often the listener looks for collections that have gone quiet.
COMPLETION_INTERVAL = 1.0
# A-ASSOCIATE-RJ: rejected permanent, by the service user, calling AE not known.
_REJECTED_PERMANENT, _SERVICE_USER, _CALLING_AE_NOT_RECOGNISED = 0x01, 0x01, 0x03


class Listener:
    """The C-ECHO/C-STORE SCP and its completion timer. `start()` returns once the
    port is bound (`port` is then the one bound, also when 0 was asked for);
    `stop()` ends both."""

    def __init__(self, *, ae_title=None, host=None, port=None, complete=True):
        self.ae_title = ae_title or settings.DICOM_AE_TITLE
        self.host = settings.DICOM_BIND if host is None else host
        self.port = settings.DICOM_PORT if port is None else port
        self.complete = complete
        self._nodes: dict[int, object] = {}  # association id -> DicomNode
        self._studies: dict[int, set[str]] = {}  # association id -> study UIDs sent
        self._stopping = threading.Event()
        self._server = None
        self._timer: threading.Thread | None = None

    def start(self) -> Listener:
        ae = self._application_entity()
        self._server = ae.start_server(
            (self.host, self.port), block=False, evt_handlers=self._handlers()
        )
        self.port = self._server.server_address[1]
        if self.complete:
            self._timer = threading.Thread(
                target=self._complete_loop, name="dicom-complete", daemon=True
            )
            self._timer.start()
        logger.info("DICOM listener %s on %s:%s", self.ae_title, self.host, self.port)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
        if self._timer is not None:
            self._timer.join(timeout=30)

    def serve_forever(self) -> None:
        """Run until stop() (from a signal handler) is called."""
        self._stopping.wait()

    def _application_entity(self) -> AE:
        ae = AE(ae_title=self.ae_title)
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification, TRANSFER_SYNTAXES[:2])
        # Scanners send hundreds of slices on one association; a whole series
        # should not hang on a sender that stalls.
        ae.maximum_pdu_size = 0  # the peer's choice: fewer, larger PDUs
        ae.network_timeout = 60
        return ae

    def _handlers(self) -> list:
        return [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_RELEASED, self._on_released),
            (evt.EVT_ABORTED, self._on_closed),
            (evt.EVT_CONN_CLOSE, self._on_closed),
        ]

    def _on_requested(self, event) -> None:
        requestor = event.assoc.requestor
        # Before negotiation the calling AE title is only in the request itself.
        calling = requestor.primitive.calling_ae_title
        ae_title = (
            calling.decode(errors="replace")
            if isinstance(calling, bytes)
            else str(calling or "")
        ).strip()
        address = requestor.address
        try:
            node = ingest.node_accepting(ae_title=ae_title, address=address)
            if node is None:
                # Audited first: the peer learns of the refusal once it is on record.
                ingest.association_refuse_record(
                    ae_title=ae_title, address=address, called=self.ae_title
                )
                event.assoc.acse.send_reject(
                    _REJECTED_PERMANENT, _SERVICE_USER, _CALLING_AE_NOT_RECOGNISED
                )
                event.assoc.kill()  # as pynetdicom's own refusals: sends, then ends
                logger.warning("Refused association from %s at %s", ae_title, address)
                connections.close_all()  # this thread ends here
                return
            self._nodes[id(event.assoc)] = node
        except Exception:
            logger.exception("Association from %s at %s failed", ae_title, address)
            event.assoc.abort()
            connections.close_all()

    def _on_echo(self, event) -> int:
        return ingest.SUCCESS

    def _on_store(self, event) -> Dataset | int:
        node = self._nodes.get(id(event.assoc))
        if node is None:  # not through _on_requested: never stored
            return ingest.CANNOT_UNDERSTAND
        try:
            outcome = ingest.instance_receive(
                node=node,
                data=event.encoded_dataset(include_meta=True),
                address=event.assoc.requestor.address,
            )
        except Exception:
            # Out of resources (disk, database): the sender keeps the instance and
            # may send it again.
            logger.exception("Could not store an instance from %s", node.ae_title)
            return 0xA700
        if outcome.study_uid:
            self._studies.setdefault(id(event.assoc), set()).add(outcome.study_uid)
        status = Dataset()
        status.Status = outcome.status
        if outcome.comment:
            status.ErrorComment = outcome.comment
        return status

    def _on_released(self, event) -> None:
        """A normal release: the sender says it has sent what it meant to. Nodes
        that send a study per association have it completed now (an abort leaves
        the collection to the quiet time)."""
        node = self._nodes.get(id(event.assoc))
        studies = self._studies.get(id(event.assoc), set())
        if node is not None and studies:
            try:
                ingest.incoming_complete_released(node=node, study_uids=studies)
            except Exception:  # the quiet time completes it instead
                logger.exception("Completing on release from %s failed", node)
        self._on_closed(event)

    def _on_closed(self, event) -> None:
        self._nodes.pop(id(event.assoc), None)
        self._studies.pop(id(event.assoc), None)
        connections.close_all()  # the association's thread, and its connection, end

    def _complete_loop(self) -> None:
        while not self._stopping.wait(COMPLETION_INTERVAL):
            try:
                close_old_connections()
                ingest.incoming_complete_quiet()
            except Exception:
                logger.exception("Completing quiet DICOM collections failed")
        connections.close_all()
