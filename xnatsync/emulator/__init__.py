"""An XNAT server emulator for tests and benchmarks, independent of the xnatsync client.

Entry points: `server.run_emulator(EmulatorConfig(...))` (async context manager) and the command
line in `cli` (`python -m xnatsync.emulator`). Map: `settings` (config and users), `store` +
`edits` + `records` + `persist` (the archive), `sessions` + `auth` (logins), `resolve` + `render`
+ `query` (paths, rows, filters), `hierarchy`, `experiments`, `assessors`, `reconstructions`,
`resources`, `files`, `upload`, `zipstream` (routes), `catalogs` (catalog refresh), `usercache`
(the user cache), `xapi_download` (bulk download), `faults` + `faultwire` (fault injection and
the request log), `seed`, `app`, `server`. Import, prearchive, archive, schema and search live in
their own modules.
"""
