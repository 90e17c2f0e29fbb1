"""Read models of runs for the CLI and the API: node reports, failures, activity, audits."""
