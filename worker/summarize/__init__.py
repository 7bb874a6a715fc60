"""A run's summary: from the boundary's checked R objects and values to ``model_summary.json``.

Start at ``extract.summarize_files`` (a run's local files in, the summary out): ``robyn`` reads models
and input metadata out of the R objects on R's thread, ``summary`` builds the document from plain
data (no R, no I/O). The worker's handler calls it between fetching the files and writing the result;
``mmm-backfill summarize`` calls it on a local folder.
"""
