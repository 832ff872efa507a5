"""GENERATE: turn one ranked finding into a candidate change (see generators.py).

Kept empty on purpose: a local model's child process imports `generate.llm.child` and must
not pay for the rest of overseer on its way (it runs under a tight memory limit)."""
