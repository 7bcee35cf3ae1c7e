"""The version of xnatsync (the User-Agent and ``--version`` say it)."""

__version__ = "0.1.0"
