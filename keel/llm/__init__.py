"""LLM and agent steps: a model request as a durable, priced, replayable record.

See ``keel.llm.types`` for the provider interface and ``keel.store.model_calls`` for the
ledger the requests are recorded in.
"""
