"""Alerts: rules in ``keel.toml`` on what the store holds (a workflow's failure rate, its
p95 duration, the age of a queue, overdue approvals, late runs), evaluated by one process
at a time, firing once per incident and resolving once, through the notifiers workflows
use (webhook, email, a function).

The modules: ``rules`` (the rule models), ``config`` (reading them), ``readings`` (their
values, from the store), ``states`` (how a state moves: pure), ``pump`` (evaluate under
the store's lease, record, deliver), ``service`` (the pump's thread in ``keel worker``
and ``keel serve``). What ``keel alerts`` and ``GET /alerts`` show is a read model of
the store (``keel.runtime.views.alerts``).
"""
