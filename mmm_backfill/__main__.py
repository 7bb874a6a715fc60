"""``python -m mmm_backfill`` runs the CLI."""

from command_line.main import main

main()
