"""Set-up shared by every test directory."""

# keel loads only CEL's compiled module (`keel.spec.expressions.cel_core`). Importing the
# `cel` package itself (its __init__ imports a CLI toolkit) touches the global `random`
# module, which Hypothesis reports as an error when it happens inside a strategy: should a
# test import it, it is imported here first. keel then reuses its compiled module.
import cel  # noqa: F401
