"""The entry layer: the ``mmm-backfill`` command. It parses flags, starts a role or a tool, and renders.

Above everything it starts (the roles, the local stack), so nothing below imports it: ``main`` holds
the subcommands, ``render`` the tables, ``durations`` the parsing of ``--timeout 5h45m``.
"""
