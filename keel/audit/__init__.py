"""The audit product over the run histories: signatures (``signing``), and what builds
on them (checkpoints of run heads, signed approvals, exports an auditor verifies offline,
tombstones of pruned runs).

A layer of its own between the store and the runtime: it reads the store's records and
the engine's events, and the runtime (approvals signed at decision time) and the CLI and
server (export, checkpoint, verify) use it.
"""
