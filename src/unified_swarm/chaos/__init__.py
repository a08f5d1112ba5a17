"""Proof under faults: record every client operation, inject faults, check the whole history.

`history` writes and reads the operation journals, `effects` is the deterministic test
executor (it logs every attempt that really ran), `checker` turns journals, effect logs and
a final dump of the store into one line per invariant.
"""
