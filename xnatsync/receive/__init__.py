"""``receive``: a DICOM C-STORE SCP that writes each received instance into a spool folder,
whole or not at all, for the ``watch`` daemon to send on (DICOM networking by pynetdicom).

The flow, one instance: pynetdicom accepts the association (``scp``: calling AE titles,
presentation contexts, limits, timeouts) → ``scp.Receiver`` takes the C-STORE, names the file
by its SOP Instance UID and builds its Part-10 header (``naming``, pure) → ``spool.Spool``
writes header + the data set as sent to a temp, fsyncs, renames → only then Success.

API, for ``xnatsync receive`` and for ``watch --listen`` in the same process::

    from xnatsync.receive.options import ReceiveOptions
    from xnatsync.receive.run import receiving

    options = ReceiveOptions(spool=Path("/srv/spool"), host="0.0.0.0", port=11112,
                             ae_title="XNATSYNC", allowed_aes=("SCANNER1",))
    async with receiving(options) as receiver:   # binds; serves in pynetdicom's threads
        print(receiver.address)                  # (host, port), the real port if 0 was asked
        ...                                      # the daemon's own work, on the loop
    # leaving (or cancellation) stops it: no new associations, stores being written finish
    # (up to options.stop_grace seconds), open associations are aborted

Without a loop: ``with scp.Receiver(options) as receiver: ...`` (``start``/``stop``). Logs go to
the ``xnatsync.receive`` logger (records carry ``event`` and ``fields`` for JSON lines); the
caller configures handlers. Nothing here installs signal handlers or touches the loop from
pynetdicom's threads.

Spool contract for readers: complete files only, named ``{SOPInstanceUID}.dcm`` (see
``naming.spool_name`` for non-conformant UIDs); temps live in ``SPOOL/.xnatsync-receive/``,
which a reader must skip (as it should skip every hidden entry).

May import the engine, pydicom and pynetdicom; never another front-end, the CLI or the
emulator. ``naming`` and ``options`` are pure. This init imports nothing (pynetdicom costs
0.4 s: only ``receive`` pays it).
"""
