"""`swarm demo`: a whole swarm on one machine, as the main job of `make run`.

An orchestrator (`swarm server` on the embedded SQLite store, a free loopback port, a fresh
data directory), N `swarm worker` processes with different capability sets, the sample
workload (workload.py) run by the shell executor with real commands, a live view (rich on a
terminal, plain lines otherwise), and a summary whose duplicates count comes from every
task's attempt history and from the workers' side-effect ledger. The demo talks to its
swarm only over HTTP, like any other client.
"""
