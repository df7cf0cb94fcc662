"""``python -m ml``: the library's command line (see :mod:`ml.cli`)."""

from ml.cli import main

raise SystemExit(main())
