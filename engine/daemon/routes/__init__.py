"""The daemon's routers, one per concern: the workspace and its event stream, runs, jobs, and model serving."""
