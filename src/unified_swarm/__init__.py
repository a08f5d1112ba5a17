"""Unified Swarm: one orchestrator for many AI agent sessions.

A central service hands each session the best next task under a lease with a fencing
token, takes work back from sessions that die, and keeps shared, versioned knowledge.
"""

__version__ = "0.1.0"
