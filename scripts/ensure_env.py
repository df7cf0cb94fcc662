"""Write a local .env with a freshly generated secret key, once.

Values already in the environment win over .env (settings read it without
overwriting), so a deployment never needs this file.
"""

import datetime
import secrets
import sys
from pathlib import Path

ENV_FILE = Path(__file__).resolve().parent.parent / ".env"


def main() -> int:
    if ENV_FILE.exists():
        return 0
    key = secrets.token_urlsafe(50)
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    ENV_FILE.write_text(
        f"# Written by `make run` on {stamp}. Every setting is described in "
        ".env.example.\n"
        f"DJANGO_SECRET_KEY={key}\n",
        encoding="utf-8",
    )
    ENV_FILE.chmod(0o600)
    print(f"Wrote {ENV_FILE.name} with a new secret key.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
