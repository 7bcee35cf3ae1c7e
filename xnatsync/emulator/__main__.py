"""`python -m xnatsync.emulator ARGS`: run the XNAT emulator (see `cli`)."""

from __future__ import annotations

import sys

from xnatsync.emulator.cli import main

sys.exit(main())
