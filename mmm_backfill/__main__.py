"""``python -m mmm_backfill`` runs the CLI."""

from mmm_backfill.cli import main

main()
