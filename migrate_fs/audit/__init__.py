"""audit: the proof of a migration, from its manifests: verify (outputs against the result
manifest and the sources), reconcile (against the legacy database's counts), diff (two runs
or two plans), report (an HTML summary). One module per command; each reads manifests part by
part (never a whole run's table in one process) and writes ``manifests/<run>/<verb>/``. The
per-object work (verify) runs through :mod:`migrate_fs.execution`. Nothing here changes an
output, a source or another stage's manifest.
"""
