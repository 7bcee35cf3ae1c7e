"""The command line: the only place that reads arguments, config files, the environment,
``~/.netrc`` and the terminal, and the only place that maps errors to exit codes.

``main`` parses and dispatches; each command module (``pull``, ``audit``, ``demo``) builds a
front-end's options value, makes one library call and turns its result into an exit code
(``errors.ExitCode``, the one table; ``outcome`` tells a pull's). ``settings`` reads config
files, ``credentials`` finds a login, ``interrupt`` runs a coroutine until it ends or
SIGINT/SIGTERM stops it.
"""

from xnatsync.cli.main import main

__all__ = ["main"]
