"""Writes to the registry of DICOM nodes and sites (admins). Each change is
audited with what changed."""

from __future__ import annotations

from django.db import transaction

from accounts.audit import AuditContext, audit_record
from accounts.models import Site, User

from .models import DicomNode

NODE_FIELDS = (
    "name",
    "ae_title",
    "host",
    "port",
    "site",
    "sends_studies",
    "complete_on_release",
    "receives_results",
    "active",
)


def _described(value) -> object:
    return value.name if isinstance(value, Site) else value


@transaction.atomic
def node_save(
    *, node: DicomNode, by: User, audit: AuditContext | None = None
) -> DicomNode:
    """Create or update a node (validated by the caller's form, checked again by
    full_clean); the audit entry lists each changed field, before and after."""
    before = (
        DicomNode.objects.filter(pk=node.pk).select_related("site").first()
        if node.pk
        else None
    )
    node.ae_title = node.ae_title.strip()
    node.full_clean()
    node.save()
    changes = {
        field: [
            _described(getattr(before, field)) if before else None,
            _described(getattr(node, field)),
        ]
        for field in NODE_FIELDS
        if before is None or getattr(before, field) != getattr(node, field)
    }
    audit_record(
        action="dicom.node_create" if before is None else "dicom.node_change",
        context=audit,
        actor=by,
        obj=node,
        detail={"ae_title": node.ae_title, "changes": changes},
    )
    return node


@transaction.atomic
def node_deactivate(
    *, node: DicomNode, by: User, audit: AuditContext | None = None
) -> DicomNode:
    """The node may no longer associate (nor receive results); its studies stay."""
    if DicomNode.objects.filter(pk=node.pk, active=True).update(active=False):
        audit_record(
            action="dicom.node_deactivate",
            context=audit,
            actor=by,
            obj=node,
            detail={"ae_title": node.ae_title},
        )
    node.refresh_from_db()
    return node


@transaction.atomic
def site_create(*, name: str, by: User, audit: AuditContext | None = None) -> Site:
    site = Site(name=name.strip())
    site.full_clean()
    site.save()
    audit_record(
        action="dicom.site_create",
        context=audit,
        actor=by,
        obj=site,
        detail={"name": site.name},
    )
    return site
