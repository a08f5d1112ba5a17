"""The decisions of the swarm, written once for every store.

`orchestrator` (the use-cases and the one face the interfaces see) is put together from
`auth` (who calls), `scheduling` (which task a session gets), `planning` (how a batch is
checked and planned) and `coordinator` (reaper, matcher, the leader lease of `leader`);
`limits` holds every input cap. Nothing here imports a web framework, a database driver
or an HTTP client; the store is reached only through the `Store` protocol and time only
through the `now` argument.
"""
