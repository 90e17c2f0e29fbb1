"""What clients do to runs: start, cancel, approve, signal, pause, retry, skip, and check input."""
