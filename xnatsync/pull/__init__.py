"""The download front-end: ``xnatsync pull``. It plans downloads; the engine runs them.

The flow, one module each, in the order a file travels:
``listing`` (discover owners, list each: ``manifest``) → ``diff`` (remote against the journal)
→ ``plan`` (with ``layout`` placing files and ``batching`` choosing zips; ``selection``
filters) → the engine's ``scheduler`` → ``execute`` (download, zip via ``zips``, verify, move,
delete) → the journal. ``deletes`` plans the run's deletes at its end; ``describe`` is a plan
as ``--dry-run`` text. ``options`` holds
``PullOptions``; ``run`` holds the ``pull`` coroutine, which ``xnatsync`` exports.

May import the engine (the modules at the top of ``xnatsync``) and ``xnatsync.xnat``; never
another front-end, the CLI or the emulator. ``diff``, ``plan``, ``deletes``, ``describe``,
``batching``, ``layout`` and ``selection`` are pure: no I/O module, no aiohttp, anyio or sqlite3
(import-linter holds these rules). This init imports nothing.

``xnatsync.pull`` itself is the coroutine (``xnatsync/__init__`` binds it); reach this
package's modules by their full path: ``from xnatsync.pull.plan import Plan``.
"""
