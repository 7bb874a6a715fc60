"""Benchmark of mmm-backfill on local emulators: ``python -m bench [--quick] [--json]``."""
