"""The error hierarchy: callers decide retry or dead-letter by the type, never by the message."""


class BackfillError(Exception):
    """Base of every error this package raises on purpose."""

    #: Short stable name used as the dead-letter reason and as a metrics label.
    reason = "error"


class PermanentError(BackfillError):
    """Retrying cannot help: the input itself is wrong. Dead-letter it."""

    reason = "permanent"


class TransientError(BackfillError):
    """The environment failed (network, quota, server). Retrying later may succeed."""

    reason = "transient"


class EmulatorRefused(BackfillError):
    """The local Pub/Sub emulator does not support a setting that Pub/Sub itself accepts."""

    reason = "emulator_refused"


class InvalidRunPath(PermanentError):
    """A path does not follow ``robyn/{revision}/{country}/{timestamp}``."""

    reason = "invalid_run_path"


class InvalidMessage(PermanentError):
    """A queue message is not a valid request or event of a known schema version."""

    reason = "invalid_message"


class MessageTooLarge(InvalidMessage):
    """The body is larger than any valid message."""

    reason = "message_too_large"


class MessageNotUtf8(InvalidMessage):
    """The body is not UTF-8 text."""

    reason = "message_not_utf8"


class MessageNotJson(InvalidMessage):
    """The body is not JSON."""

    reason = "message_not_json"


class MessageBadFields(InvalidMessage):
    """The JSON is not an object of the known fields with their types and values."""

    reason = "message_bad_fields"


class MessageVersion(InvalidMessage):
    """The body is of a schema version this tool does not read."""

    reason = "message_version"


class PathOutsideLayout(InvalidMessage):
    """The run path is not ``robyn/{revision}/{country}/{timestamp}`` or disagrees with the fields."""

    reason = "path_outside_layout"


class OtherBucket(InvalidMessage):
    """The message names a bucket this process does not serve."""

    reason = "other_bucket"


class ObjectTooLarge(PermanentError):
    """An object is larger than its reader allows: refused from its listed size, or stopped once the
    bytes read (decoded, for a content-encoded object) pass the limit."""

    reason = "object_too_large"


class MissingRunFile(PermanentError):
    """A run lacks a file it must have (``OutputCollect.RDS``)."""

    reason = "missing_run_file"


class RdsError(PermanentError):
    """Base for every problem with an RDS file's bytes or content."""

    reason = "rds_error"


class RdsTooLarge(RdsError):
    """The file, or its decompressed stream, exceeds the configured limit."""

    reason = "rds_too_large"


class NotRds(RdsError):
    """The bytes are not an RDS file (no known compression or serialization header)."""

    reason = "not_rds"


class RdsTruncated(RdsError):
    """The file ends before its compressed or serialized stream does."""

    reason = "rds_truncated"


class RdsCorrupt(RdsError):
    """The stream is damaged: bad compressed data or a serialization R cannot read."""

    reason = "rds_corrupt"


class RdsTooDeep(RdsError):
    """Objects nest deeper than the limit: R's reader recurses once per level and would overflow its stack."""

    reason = "rds_too_deep"


class RdsValueTooLarge(RdsError):
    """A string, vector or table is larger than its limit (the stream itself may be small)."""

    reason = "rds_value_too_large"


class RdsOverBudget(RdsError):
    """The objects R would build from the stream exceed the memory budget of one run."""

    reason = "rds_over_memory_budget"


class AltrepRefused(RdsError):
    """An ALTREP record of a class not on the allowlist (``mmap_*``, or any other package's class)."""

    reason = "altrep_refused"


class AltrepTooLong(RdsError):
    """An allowed ALTREP record (compact sequence, deferred string, wrapper) longer than the limit."""

    reason = "altrep_too_long"


class ForbiddenRdsType(RdsError):
    """External pointers, weak references, persistent or class references: no place in model output."""

    reason = "rds_forbidden_type"


class InvalidText(RdsError):
    """Text in the file that is not valid UTF-8."""

    reason = "invalid_text"


class WrongObject(RdsError):
    """The RDS holds a readable object of the wrong kind (not a Robyn output)."""

    reason = "wrong_object"


class UnsafeObject(WrongObject):
    """Code-carrying R objects (closure, environment, promise...) stand where data belongs."""

    reason = "unsafe_object"


class MissingColumn(RdsError):
    """``resultHypParam`` lacks a column the summary needs."""

    reason = "missing_column"


class WrongColumnType(RdsError):
    """A needed column exists but holds the wrong type of data."""

    reason = "wrong_column_type"


class EmptyModels(RdsError):
    """``resultHypParam`` has no rows: there is no model to summarise."""

    reason = "empty_models"


class InvalidRunFile(PermanentError):
    """``best_model_id.txt`` or ``timings.csv`` cannot be read as text of the expected form."""

    reason = "invalid_run_file"


class WorkerCrashed(PermanentError):
    """Handling this run killed a worker process as many times as allowed; it is not tried again."""

    reason = "worker_crashed"


class RunTimeout(PermanentError):
    """Handling this run held a worker past the wall-clock limit; the worker was stopped."""

    reason = "run_timeout"
