"""The coordination rules (pure functions in `rules`) and the Orchestrator use-cases.

Nothing here imports a web framework, a database driver or an HTTP client; the store is
reached only through the `Store` protocol and time only through the `now` argument.
"""
