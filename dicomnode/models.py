"""The portal as a DICOM node: the scanners and PACS it talks to, the studies
arriving from them, the results it sends back and the alerts it raises.

dicomnode is built on diagnosis (accounts <- diagnosis <- dicomnode): it creates
studies through diagnosis' services and hears of results through its signals.
"""

from django.conf import settings
from django.db import models

from stroke_portal.models import BaseModel


class DicomNode(BaseModel):
    """A scanner, PACS or workstation an admin registered. Only registered, active
    nodes may send studies (by calling AE title, and by address when one is set);
    results go to the nodes marked as destinations."""

    name = models.CharField(max_length=120)
    ae_title = models.CharField(
        "AE title", max_length=16, unique=True, help_text="1-16 characters, no '\\'."
    )
    # Empty: any address may associate with this AE title. Set: only this one.
    host = models.CharField(max_length=255, blank=True)
    # Where results are sent (its own listener); needed for destinations only.
    port = models.PositiveIntegerField(null=True, blank=True)
    site = models.ForeignKey(
        "accounts.Site",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="dicom_nodes",
    )
    sends_studies = models.BooleanField(
        default=True, help_text="May send studies to the portal (C-STORE, STOW)."
    )
    # For senders that send a whole study in one association (most scanners): the
    # study is complete when they release it, without waiting for the quiet time.
    complete_on_release = models.BooleanField(
        "Complete a study when the sender releases its association",
        default=False,
        help_text="For scanners that send each study in one association: it is "
        "analysed at once instead of after the quiet time.",
    )
    receives_results = models.BooleanField(
        default=False,
        help_text="Results (PDF, key images, structured report) are sent to it.",
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["ae_title"]

    def __str__(self) -> str:
        return f"{self.name} ({self.ae_title})"


class CollectionState(models.TextChoices):
    COLLECTING = "collecting", "Collecting"
    QUEUED = "queued", "Queued for analysis"
    FAILED = "failed", "Failed"


class IncomingStudy(BaseModel):
    """Instances of one study (StudyInstanceUID) arriving from one node. It stays
    `collecting` until no instance has arrived for the quiet time (or the sender
    says it is complete); then it becomes a diagnosis Study, queued for analysis.
    A second association for the same study while it is collecting adds to it."""

    node = models.ForeignKey(
        DicomNode, on_delete=models.PROTECT, related_name="incoming"
    )
    study_instance_uid = models.CharField(max_length=64)
    state = models.CharField(
        max_length=12,
        choices=CollectionState.choices,
        default=CollectionState.COLLECTING,
        db_index=True,
    )
    first_received_at = models.DateTimeField()
    last_received_at = models.DateTimeField(db_index=True)
    study = models.ForeignKey(
        "diagnosis.Study",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="incoming",
    )
    error_message = models.TextField(blank=True)

    class Meta:
        ordering = ["-last_received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["node", "study_instance_uid"],
                condition=models.Q(state="collecting"),
                name="one_collection_per_study_and_node",
            )
        ]

    def __str__(self) -> str:
        return f"{self.study_instance_uid} from {self.node.ae_title} ({self.state})"


class IncomingInstance(models.Model):
    """One received instance, stored content-addressed as uploads are."""

    incoming = models.ForeignKey(
        IncomingStudy, on_delete=models.CASCADE, related_name="instances"
    )
    sop_instance_uid = models.CharField(max_length=64)
    series_instance_uid = models.CharField(max_length=64, blank=True)
    sha256 = models.CharField(max_length=64)
    storage_name = models.CharField(max_length=200)
    received_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["incoming", "sop_instance_uid"],
                name="instance_stored_once_per_collection",
            )
        ]

    def __str__(self) -> str:
        return self.sop_instance_uid


class DeliveryKind(models.TextChoices):
    PDF = "pdf", "Report (Encapsulated PDF)"
    KEY_IMAGES = "sc", "Key images (Secondary Capture)"
    SR = "sr", "Structured report"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class Delivery(BaseModel):
    """One result object for one destination: sent when the study becomes ready
    and again when its reading changes (a new `revision`), retried while the peer
    is down, and shown with the peer's status on the study page."""

    study = models.ForeignKey(
        "diagnosis.Study", on_delete=models.CASCADE, related_name="deliveries"
    )
    destination = models.ForeignKey(
        DicomNode, on_delete=models.PROTECT, related_name="deliveries"
    )
    kind = models.CharField(max_length=4, choices=DeliveryKind.choices)
    # What the object was made from: "result-<AIResult pk>" or "review-<Review pk>".
    revision = models.CharField(max_length=40)
    state = models.CharField(
        max_length=8,
        choices=DeliveryState.choices,
        default=DeliveryState.PENDING,
        db_index=True,
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    # The peer's answer: "0x0000 Success", "0xA700 Out of resources", "no
    # association: connection refused", ...
    peer_status = models.CharField(max_length=200, blank=True)
    sop_instance_uid = models.CharField(max_length=64, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "destination", "kind", "revision"],
                name="one_delivery_per_object_and_destination",
            )
        ]


class AlertChannel(models.TextChoices):
    EMAIL = "email", "E-mail"
    WEBHOOK = "webhook", "Webhook"


class AlertState(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class Alert(BaseModel):
    """A notice to the on-call stroke team that a study has a suspected finding."""

    study = models.ForeignKey(
        "diagnosis.Study", on_delete=models.CASCADE, related_name="alerts"
    )
    result = models.ForeignKey(
        "diagnosis.AIResult", on_delete=models.PROTECT, related_name="alerts"
    )
    channel = models.CharField(max_length=8, choices=AlertChannel.choices)
    # E-mail addresses or the webhook URL it went to.
    recipient = models.CharField(max_length=500)
    state = models.CharField(
        max_length=8, choices=AlertState.choices, default=AlertState.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    error_message = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # From the study's last instance received (or its upload) to the alert sent.
    seconds_from_last_instance = models.FloatField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["result", "channel"], name="one_alert_per_result_and_channel"
            )
        ]
