"""Tests of keel's built-in steps."""
