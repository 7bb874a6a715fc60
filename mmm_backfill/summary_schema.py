"""Field names and version of the run summary (``model_summary.json``) and country file."""

#: Bump when a field changes meaning or type; readers reject unknown majors.
SCHEMA_VERSION = 1

#: Metric fields of every model entry, in output order.
MODEL_METRICS = (
    "nrmse",
    "decomp_rssd",
    "rsq_train",
    "nrmse_train",
    "rsq_val",
    "nrmse_val",
    "rsq_test",
    "nrmse_test",
    "mape",
)

#: Fields of a model entry (and of ``best_model``): its id, then its metrics.
MODEL_FIELDS = ("model_id", *MODEL_METRICS)
#: Longest model id (Robyn's look like "3_152_7"); a summary never carries megabytes of id.
MAX_MODEL_ID_CHARS = 256

#: At most this many Pareto models are listed (the count covers all of them).
MAX_PARETO_MODELS = 10
#: At most this many candidate models are listed (the count covers all rows).
MAX_CANDIDATE_MODELS = 100

#: Variable lists of ``input_metadata``, always written as JSON arrays.
INPUT_VAR_LISTS = ("paid_media_vars", "organic_vars", "context_vars", "factor_vars")
#: Scalar text fields of ``input_metadata``.
INPUT_SCALARS = ("dep_var", "dep_var_type", "adstock")
#: Date fields of ``input_metadata``, written as ISO dates.
INPUT_DATES = ("window_start", "window_end")
