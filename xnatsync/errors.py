"""The one exception tree of xnatsync.

Every error the library raises is one of these. aiohttp and OS errors are converted at the
boundary (``xnatsync.xnat.client`` for HTTP, ``xnatsync.transfer`` for the local disk), and XNAT
responses become typed errors in one function (``xnatsync.xnat.parse.raise_for_status``).

::

    XnatSyncError                    base; .disposition says what the scheduler does with it
                                     (a per-file failure that is not fatal: exit 1)
    ├── UsageError                   bad arguments or config                       fatal, exit 2
    ├── LockedError                  another run holds the destination lock        fatal, exit 2
    ├── AuthError                    bad credentials, expired token                fatal, exit 3
    │   ├── PermissionDeniedError    403 on something we must reach                fatal, exit 3
    │   ├── TlsError                 the server's certificate is not trusted       fatal, exit 3
    │   └── ProjectNotFoundError     a requested project is absent or hidden       exit 3 (at end)
    ├── UnreachableError             no answer, or not an XNAT (retry later)       fatal, exit 5
    ├── RemoteError                  an HTTP answer we cannot use (.status)
    │   ├── TransientRemoteError     5xx, 429 (.retry_after), 408                  retryable
    │   ├── NotFoundError            404                                           permanent
    │   └── BadResponseError         unparsable listing, HTML where data expected  permanent
    │       └── TruncatedResponseError  a JSON document cut short                  retryable
    ├── TransportError               reset, truncated body, stall, refused         retryable
    ├── IntegrityError               size or MD5 differs from the listing          retryable
    ├── UnsafePathError              a remote name that would escape DEST          permanent
    ├── LocalFileError               one local file cannot be written or read      permanent
    │   └── SourceChangedError       a file to send changed since it was listed    retryable
    ├── LocalDiskError               ENOSPC, EACCES, EROFS on DEST                 fatal, exit 4
    └── JournalError                 the journal cannot be read or written         fatal, exit 4
        └── JournalReadOnlyError     ... because it may only be read

*retryable*: the same request may succeed if tried again (with backoff).
*permanent*: recorded as this file's failure; the run goes on.
*fatal*: the run stops; what is done stays done.

Exit codes (``ExitCode``, the one table; the CLI maps errors through ``exit_code_for`` and the
README repeats it):

====  ======================================================================================
0     every planned file is present and verified
1     some files failed (the rest are done; failures are listed)
2     usage or configuration error, or the destination is locked by another run
3     authentication or permission error (also: the server's TLS certificate is not trusted)
4     local disk or journal error (full, read-only, permission)
5     the server cannot be reached, or is not an XNAT (worth retrying later, e.g. from cron)
130   interrupted (Ctrl-C / SIGTERM); what was verified stays done
0     (``watch``) the daemon's normal stop: SIGTERM/SIGINT end it cleanly with 0, not 130
====  ======================================================================================

Messages never contain credentials: callers pass URLs through ``redact`` before building them.
"""

from __future__ import annotations

import enum
import re
from pathlib import Path


class ExitCode(enum.IntEnum):
    """How a run ended, as a process exit code. The one table (see the module docstring)."""

    OK = 0
    FAILED_FILES = 1
    USAGE = 2
    AUTH = 3
    DISK = 4
    UNREACHABLE = 5
    INTERRUPTED = 130


class Disposition(enum.Enum):
    """What the scheduler does with an error."""

    RETRYABLE = "retryable"
    PERMANENT = "permanent"
    FATAL = "fatal"


class XnatSyncError(Exception):
    """Base of every xnatsync error."""

    disposition = Disposition.PERMANENT
    exit_code: int = ExitCode.FAILED_FILES

    @property
    def retryable(self) -> bool:
        return self.disposition is Disposition.RETRYABLE

    @property
    def fatal(self) -> bool:
        return self.disposition is Disposition.FATAL


class UsageError(XnatSyncError):
    """Bad command-line arguments or configuration."""

    disposition = Disposition.FATAL
    exit_code: int = ExitCode.USAGE


class LockedError(XnatSyncError):
    """Another live run holds the lock on this destination."""

    disposition = Disposition.FATAL
    exit_code: int = ExitCode.USAGE


class AuthError(XnatSyncError):
    """Authentication failed; never retried in a loop (XNAT locks accounts)."""

    disposition = Disposition.FATAL
    exit_code: int = ExitCode.AUTH


class PermissionDeniedError(AuthError):
    """Authenticated, but the server refuses (403)."""


class TlsError(AuthError):
    """The server could not be authenticated: its TLS certificate is not trusted, or the TLS
    handshake failed. Never retried: nothing changes until a CA bundle is configured."""


class ProjectNotFoundError(AuthError):
    """A requested project does not exist, or the user may not see it: XNAT answers 404 for
    both. Raised after the other projects were pulled."""


class UnreachableError(XnatSyncError):
    """The server did not answer (refused, unresolvable, down, a proxy's 5xx), or what answered
    is not an XNAT. Nothing was done; the same command may well work later."""

    disposition = Disposition.FATAL
    exit_code: int = ExitCode.UNREACHABLE


class RemoteError(XnatSyncError):
    """The server answered with a status or body we cannot use."""

    def __init__(self, message: str, *, status: int | None = None, url: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.url = url


class TransientRemoteError(RemoteError):
    """5xx, 408 or 429: worth retrying after a pause."""

    disposition = Disposition.RETRYABLE

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        url: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, url=url)
        self.retry_after = retry_after


class NotFoundError(RemoteError):
    """404: the object is not there (or not visible to this user)."""


class BadResponseError(RemoteError):
    """A 2xx answer whose body is not what the request asked for."""


class TruncatedResponseError(BadResponseError):
    """A JSON listing that ends early: the connection, not the server's answer, went wrong."""

    disposition = Disposition.RETRYABLE


class TransportError(XnatSyncError):
    """The connection failed: refused, reset, truncated body, or a read stall."""

    disposition = Disposition.RETRYABLE


class IntegrityError(XnatSyncError):
    """Downloaded bytes differ from the listing's size or MD5 digest."""

    disposition = Disposition.RETRYABLE


class UnsafePathError(XnatSyncError):
    """A remote file name that would place a file outside the destination."""


class LocalFileError(XnatSyncError):
    """One local path cannot be used (a directory where a file should go, a name too long)."""


class SourceChangedError(LocalFileError):
    """A local file to be sent changed size (or vanished) since it was found: what was planned
    from it no longer holds. Worth sending again later, once the file is quiet."""

    disposition = Disposition.RETRYABLE

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


class LocalDiskError(XnatSyncError):
    """The destination cannot be written: full, read-only, or permission denied."""

    disposition = Disposition.FATAL
    exit_code: int = ExitCode.DISK


class JournalError(XnatSyncError):
    """The SQLite journal cannot be opened, migrated or written."""

    disposition = Disposition.FATAL
    exit_code: int = ExitCode.DISK


class JournalReadOnlyError(JournalError):
    """The journal may be read but not written (a read-only mount, another user's file)."""


_SECRET_IN_URL = re.compile(r"(://)[^/@\s]+@")
_SECRET_PARAM = re.compile(r"(?i)\b(password|passwd|secret|token|jsessionid|j_password)=([^&\s;]+)")


def redact(text: str) -> str:
    """Remove credentials from a URL or message: userinfo, and secret-looking parameters."""
    text = _SECRET_IN_URL.sub(r"\1***@", text)
    return _SECRET_PARAM.sub(r"\1=***", text)


def exit_code_for(error: BaseException) -> int:
    """The one place errors become exit codes."""
    if isinstance(error, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(error, XnatSyncError):
        return error.exit_code
    return ExitCode.FAILED_FILES


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first leaf of a task group's exception group: what actually went wrong."""
    first = group.exceptions[0]
    return first_error(first) if isinstance(first, BaseExceptionGroup) else first
