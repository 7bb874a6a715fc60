"""``python -m mmm_backfill`` runs the ``mmm-backfill`` command, for scripts that call it so.

The one import from the shared core up to the entry layer; nothing imports this module, and the
layers contract in pyproject.toml names it as its one exception.
"""

from command_line.main import main

main()
