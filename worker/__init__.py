"""Worker role: consume summary requests from the queue and write each run's summary once.

What the role does sits here, on top; what it reads runs through two subpackages below it:

- the queue side, here: ``pool`` (N processes) > ``consumer`` (one process's loop) > ``handler``
  (one request: ``fetch`` the files, summarize, ``replace`` or create, report), with ``prefetch``
  and ``write_behind`` overlapping the next request with R, and ``claims``, ``lease``, ``held``,
  ``recovery`` and ``decisions`` keeping every request accounted for through crashes and stops;
- ``summarize/``: a run's local files to its ``model_summary.json``;
- ``boundary/``: the untrusted-input boundary, where a run's bytes become checked values (its
  ``__init__`` gives the threat model).
"""
