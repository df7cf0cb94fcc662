"""What each role sees in the navigation bar and on its home page.

Later apps add their pages here, so that navigation stays in one place.
"""

from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse

from .models import Role, User


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    roles: tuple[str, ...]
    description: str = ""


NAV_ITEMS: tuple[NavItem, ...] = (
    NavItem("Home", "home", tuple(Role.values), "Your start page."),
    NavItem(
        "Worklist",
        "diagnosis:study-list",
        (Role.RADIOLOGIST, Role.ADMIN),
        "Studies to read, AI-suspected strokes first.",
    ),
    NavItem(
        "My studies",
        "diagnosis:study-list",
        (Role.CLINICIAN,),
        "The studies you uploaded, their AI results and reviews.",
    ),
    NavItem(
        "Upload",
        "diagnosis:study-upload",
        tuple(Role.values),
        "Send a head CT or MRI study for AI analysis.",
    ),
    NavItem(
        "Feedback",
        "feedback:case-list",
        (Role.RADIOLOGIST, Role.ADMIN),
        "Cases where readers corrected the AI: confirm or reject them for training.",
    ),
    NavItem(
        "Models",
        "feedback:model-list",
        (Role.ADMIN,),
        "Model versions, the promotion gate, rollback and uploads.",
    ),
    NavItem(
        "DICOM nodes",
        "dicomnode:node-list",
        (Role.ADMIN,),
        "Scanners and PACS that send studies and receive results; their sites.",
    ),
    NavItem(
        "Retraining",
        "feedback:job-list",
        (Role.ADMIN,),
        "Start a retraining job on a data set plus confirmed feedback; watch it.",
    ),
    NavItem(
        "Dashboard",
        "feedback:dashboard",
        (Role.ADMIN,),
        "Users, feedback, jobs, models and the portal's live figures.",
    ),
    NavItem(
        "Users",
        "accounts:user-list",
        (Role.ADMIN,),
        "Approve registrations, change roles, deactivate accounts, reset passwords.",
    ),
    NavItem(
        "Audit trail",
        "accounts:audit-list",
        (Role.ADMIN,),
        "Who did what and when; filter and export as CSV.",
    ),
)

ROLE_INTRODUCTIONS = {
    Role.RADIOLOGIST: (
        "Work the queue of uploaded studies, AI-suspected strokes first; check the "
        "AI finding on the slices and confirm or correct it."
    ),
    Role.CLINICIAN: (
        "Upload head CT or MRI studies and download a PDF report for each one."
    ),
    Role.ADMIN: (
        "Manage users and roles, read the audit trail, and look after the models."
    ),
}


def nav_items_for(user: User) -> list[dict]:
    if not (user.is_authenticated and user.is_active):
        return []
    items = []
    for item in NAV_ITEMS:
        if user.role not in item.roles:
            continue
        try:
            url = reverse(item.url_name)
        except NoReverseMatch:
            continue
        items.append(
            {
                "label": item.label,
                "url": url,
                "description": item.description,
                "name": item.url_name,
            }
        )
    return items


def role_home_sections(user: User) -> dict:
    return {
        "introduction": ROLE_INTRODUCTIONS.get(user.role, ""),
        "links": [i for i in nav_items_for(user) if i["name"] != "home"],
    }
