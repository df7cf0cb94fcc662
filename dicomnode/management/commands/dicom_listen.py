"""`manage.py dicom_listen`: the DICOM listener as its own process (make run and
docker-compose start it beside web and workers)."""

import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from dicomnode.listener import Listener


class Command(BaseCommand):
    help = "Receive studies over DICOM (C-ECHO, C-STORE) from registered nodes."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=settings.DICOM_PORT)
        parser.add_argument("--bind", default=settings.DICOM_BIND)
        parser.add_argument("--ae-title", default=settings.DICOM_AE_TITLE)

    def handle(self, *args, port, bind, ae_title, **options):
        listener = Listener(ae_title=ae_title, host=bind, port=port).start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: listener._stopping.set())
        self.stdout.write(
            f"DICOM listener {listener.ae_title} on {listener.host}:{listener.port} "
            f"(quiet time {settings.DICOM_QUIET_SECONDS:g} s)",
        )
        self.stdout.flush()
        listener.serve_forever()
        listener.stop()
        self.stdout.write("DICOM listener stopped.")
