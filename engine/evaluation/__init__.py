"""Evaluation: tasks (built in, the standard suites from local files, custom task files), the one scoring core
(log-likelihood, rolling log-likelihood, generation until a stop), metrics as the reference tools define them,
and efficiency figures. Results are catalog rows."""
