"""mmm-backfill: backfill Robyn model summaries with a queue-based worker pool."""

__version__ = "0.1.0"

#: Name written into every summary's ``generator`` field.
TOOL_NAME = "mmm-backfill"
