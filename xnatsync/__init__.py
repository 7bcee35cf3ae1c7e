"""xnatsync: bulk asynchronous data transfer for XNAT."""

from xnatsync.errors import XnatSyncError

__all__ = ["XnatSyncError", "__version__"]

__version__ = "0.1.0"
