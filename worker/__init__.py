"""Worker role: turn one run's files into its summary, and consume summary requests from the queue."""
