"""Set-up shared by every test directory."""

# keel imports CEL lazily (its package imports a CLI toolkit, too slow for `keel --help`).
# That first import touches the global `random` module, which Hypothesis reports as an
# error when it happens inside a strategy (compiling a generated plan); import it here.
import cel  # noqa: F401
