"""Producer role: find runs that lack a summary and enqueue one request per run."""
