"""pytest reads this file first: its folder (the project's) goes on ``sys.path``, so the
tests in ``tests/`` import the workflow as ``keel run`` does."""
