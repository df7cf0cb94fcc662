"""Create the demo accounts (an admin, two radiologists, a clinician) once.

Their passwords are printed once, when they are created, and kept in
DATA_DIR/demo-credentials.txt (readable by the owner only). Demo accounts are for
trying the portal on your own machine, never on a server with patient data.
"""

import os

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts.services import demo_users_ensure


class Command(BaseCommand):
    help = "Create the demo admin, radiologist and clinician accounts if missing."

    def handle(self, *args, **options):
        accounts = demo_users_ensure()
        new = [(u, r, p) for u, r, p in accounts if p is not None]
        credentials = settings.DATA_DIR / "demo-credentials.txt"
        if not new:
            self.stdout.write(
                "Demo accounts exist already "
                f"({', '.join(u for u, _, _ in accounts)}); "
                f"their passwords were printed when they were created and are in "
                f"{credentials}."
            )
            return
        lines = [f"  {role:<12} {user:<18} {password}" for user, role, password in new]
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        with open(credentials, "a", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
        os.chmod(credentials, 0o600)
        banner = "=" * 64
        self.stdout.write(self.style.WARNING(banner))
        self.stdout.write(
            self.style.WARNING(" Demo accounts (for trying the portal only):")
        )
        self.stdout.write("\n".join(lines))
        self.stdout.write(f" Also saved in {credentials}")
        self.stdout.write(self.style.WARNING(banner))
