"""Proof under faults: record every client operation, inject faults, check the whole history.

`history` writes and reads the operation journals, `effects` is the deterministic test
executor (it logs every attempt that really ran, and the result it printed), `nemesis`
injects faults aimed at work in progress and records each one's target and window, `swarm`
runs the processes and the workload, `dump` reads the final state over HTTP and from the
store, and `checker` (with `once` and `excuses`) turns journals, effect logs, the final
state and the faults into one line per invariant. `results` writes a run's table where the
docs include it.
"""
