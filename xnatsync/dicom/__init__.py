"""The DICOM side of ``xnatsync import`` (and, later, of the ``watch`` daemon).

The flow, one module each, in the order an instance travels: ``discover`` (walk the sources;
``headers`` reads each file's header only, in worker threads) → ``instance`` values →
``studies`` (group by StudyInstanceUID, order series, drop duplicate instances, split big
studies at scan boundaries) → ``labels`` (subject and session labels from templates or XNAT's
defaults, made XNAT-safe and unique per run) → ``dicomzip`` (one zip per request, streamed
with its length known before the first byte; the engine's ``zipformat`` holds the record
bytes).

May import the engine (the modules at the top of ``xnatsync``), pydicom and anyio; never
another front-end, the CLI or the emulator. ``instance``, ``studies`` and ``labels`` are
pure: no I/O module, no anyio, aiohttp or sqlite3 (import-linter holds
these rules). This init imports nothing.
"""
