"""The engine process: one per workspace, sole writer of its catalog, supervisor of jobs, HTTP + SSE API."""
