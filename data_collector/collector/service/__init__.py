"""The gate service and deploy hook: jobs, verdicts for controllers, KServe canaries, gunicorn."""
