"""An XNAT server emulator for tests and benchmarks, independent of the xnatsync client.

Entry points: `server.run_emulator(EmulatorConfig(...))` (async context manager) and the command
line in `cli` (`python -m xnatsync.emulator`). Map: `settings` (config and users), `store` +
`edits` + `records` + `persist` (the archive), `sessions` + `auth` (logins), `resolve` + `render`
+ `query` (paths, rows, filters), `hierarchy`, `experiments`, `assessors`, `reconstructions`,
`resources`, `files`, `upload` (with `catalogs`: the catalog write and its race), `zipstream`
(routes), `catalog_refresh` (catalog refresh), `usercache` (the user cache), `xapi_download`
(bulk download), `faults` + `faultwire` + `requestlog` (fault injection and the request
log), `costs` + `routeclass` + `pacing` + `outage` (what a loaded server costs: bandwidth cap,
server time, outages), `seed`, `app`, `server`. Import (`importer`, `import_receive`,
`import_staging`, `dicom_import`), prearchive, archive, status, schema and search (`search_routes`,
`search_cache`, `saved_search`, `stored_search`) live in their own modules.
"""
