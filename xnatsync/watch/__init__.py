"""The ``watch`` daemon: DICOM arriving in a spool folder, sent study by study to XNAT.

The flow, one module each: ``spool`` (scans, looks, moves out of the spool) and the file
events → ``queue`` (the durable queue in SQLite: files and studies with their states) →
``rules`` (pure: when a file is settled, when a study is complete, backoff, health) →
``sending`` (one study through ``dicom.send.StudySender``: look, send what is missing, check,
then the after-upload action) → ``health`` (status file and HTTP endpoint); ``daemon`` runs it
all in one task group, ``link`` keeps the XNAT session alive for months; ``options`` holds
``WatchOptions``.

May import the engine and ``xnatsync.dicom`` (the one front-end another may use); never
another front-end, the CLI or the emulator. ``rules`` is pure. This init imports nothing.
"""
