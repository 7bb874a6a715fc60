"""The untrusted-input boundary: a run's bytes in, checked values out. Nothing else in the worker reads them.

Threat model. Whoever can write a run folder (``robyn/{revision}/{country}/{timestamp}/``) controls
every byte of ``OutputCollect.RDS``, ``InputCollect.RDS`` and the small text files beside them. Such a
writer may try to read the worker's own files into a summary the whole bucket can read (R's
``mmap_integer`` ALTREP maps a file named in the stream), to exhaust memory or CPU with a few hundred
bytes (a compact sequence of 1e15 elements, a declared length of 2e9), to crash R's reader (deep
nesting, negative lengths), or to make R load and run a package installed on the worker.

What this package guarantees, in the order a file meets it:

- ``rds_file``: the format recognised and decompressed in Python, stopped at its limit (R's own
  ``readRDS`` would inflate a gzip bomb without bound);
- ``rds_stream`` (with ``rds_records`` and, for speed, ``_rdscheck.c``): the whole serialization
  stream walked before R sees a byte of it: every length backed by bytes, nesting, strings and the
  memory R would allocate bounded, ALTREP only for R's own classes, no kind of object that has no
  place in saved model output;
- ``rbridge``: the only module that imports rpy2; R only *unserializes* a checked stream, and the
  objects are then read through rpy2's low-level interface, so no R function, promise, active
  binding or method ever runs;
- ``runfiles``: the small text files parsed within a size limit, as UTF-8, into typed values.

Every refusal is a named ``RdsError`` or ``InvalidRunFile`` (``mmm_backfill.errors``), which the
worker dead-letters with its reason. The limits are ``mmm_backfill.config.RdsLimits``; the figures
behind them and the tests that prove each are in docs/guarantees.md, section 4. Nothing here touches
the queue or the bucket (an import-linter contract in pyproject.toml holds that).
"""
