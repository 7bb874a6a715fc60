"""The local stack: a tool for people and tests, not part of any role.

The emulators on free loopback ports (``emulators``, ``stack``), generated Robyn-like runs
(``fixtures``) and the real samples (``samples``) put in a bucket (``seed``), ``mmm-backfill demo``
(``demo``), and the polling helpers tests use against a running stack (``testing``).
"""
