"""What can go wrong in a ``sql`` step, and whether another attempt may do better.

Retryable (another attempt may succeed): the database cannot be reached or the
connection dropped, a deadlock or serialization failure, a lock wait, the statement
running past the step's timeout. Not retryable (``NonRetryable``: another attempt would
be refused the same way): the settings, the parameters, the statement itself (syntax,
a missing table, a constraint), too many rows, a value JSON cannot hold, a missing
driver. Every message names the connection and quotes the database's own words.
"""

from __future__ import annotations

from keel.errors import KeelError, NonRetryable


class SqlUnavailableError(KeelError):
    """The database could not be reached, or the connection was lost (retryable)."""


class SqlTemporaryError(KeelError):
    """The database refused for now: a deadlock, a serialization failure, a timeout
    (retryable)."""


class SqlStatementError(NonRetryable):
    """The database refused the statement (syntax, a missing table, a constraint)."""


class SqlParamsError(NonRetryable):
    """The query and its ``params`` do not fit a step: a ``:name`` without a value, a
    value the query does not use, or a second statement after a ``;``."""


class SqlTooManyRowsError(NonRetryable):
    """The statement gave more rows than the step's ``max_rows``."""


class SqlDriverMissingError(NonRetryable):
    """The database's driver is not installed on the worker."""
