"""``python -m xnatsync ARGS``: the same as the ``xnatsync`` command."""

import sys

from xnatsync.cli.main import main

sys.exit(main())
