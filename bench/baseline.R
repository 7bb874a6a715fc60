# The sequential method the pool replaces, one run per process (like the app's old
# extract_model_summary.R): load jsonlite and dplyr, readRDS the run's files, build the summary
# with dplyr, write it as JSON. Reproduces the old extractor's quirks (4-digit rounding, Pareto
# looked up under pareto_optimal / robyn_pareto_front only, table order, first row as best model).
#
# Usage: Rscript baseline.R RUN_DIR OUT_JSON REVISION COUNTRY TIMESTAMP

suppressPackageStartupMessages({
  library(jsonlite)
  library(dplyr)
})

args <- commandArgs(trailingOnly = TRUE)
run_dir <- args[[1]]; out <- args[[2]]
revision <- args[[3]]; country <- args[[4]]; timestamp <- args[[5]]

oc <- readRDS(file.path(run_dir, "OutputCollect.RDS"))
hyp <- as_tibble(as.data.frame(oc$resultHypParam))

metrics <- c("nrmse", "decomp.rssd", "rsq_train", "nrmse_train", "rsq_val", "nrmse_val", "rsq_test",
             "nrmse_test", "mape")
for (m in setdiff(metrics, names(hyp))) hyp[[m]] <- NA_real_
models <- hyp %>%
  transmute(model_id = solID, nrmse, decomp_rssd = decomp.rssd, rsq_train, nrmse_train, rsq_val, nrmse_val,
            rsq_test, nrmse_test, mape) %>%
  mutate(across(-model_id, ~ round(as.numeric(.x), 4)))

front_col <- intersect(c("pareto_optimal", "robyn_pareto_front"), names(hyp))
on_front <- if (length(front_col)) hyp[[front_col[[1]]]] %in% c(TRUE, 1) else rep(FALSE, nrow(hyp))
pareto <- models %>% filter(on_front) %>% mutate(robyn_pareto_front = 1L)
candidates <- models %>% mutate(is_pareto = on_front)

input_metadata <- NULL
ic_path <- file.path(run_dir, "InputCollect.RDS")
if (file.exists(ic_path)) {
  ic <- readRDS(ic_path)
  one <- function(x) if (length(x) == 0) NULL else if (length(x) == 1) as.character(x) else as.character(x)
  input_metadata <- list(
    dep_var = one(ic$dep_var), dep_var_type = one(ic$dep_var_type), adstock = one(ic$adstock),
    window_start = one(format(ic$window_start)), window_end = one(format(ic$window_end)),
    paid_media_vars = one(ic$paid_media_vars), paid_media_spends = one(ic$paid_media_spends),
    organic_vars = one(ic$organic_vars), context_vars = one(ic$context_vars),
    factor_vars = one(ic$factor_vars), prophet_vars = one(ic$prophet_vars)
  )
}

summary <- list(
  country = country, revision = revision, timestamp = timestamp,
  created_at = format(Sys.time(), "%Y-%m-%d %H:%M:%S"),
  training_time_mins = NULL,
  has_pareto_models = nrow(pareto) > 0, pareto_model_count = nrow(pareto), pareto_models = pareto,
  candidate_model_count = nrow(candidates), candidate_models = candidates,
  best_model = if (nrow(models)) as.list(models[1, ]) else NULL,
  input_metadata = input_metadata
)
write_json(summary, out, auto_unbox = TRUE, pretty = TRUE, null = "null", na = "null", digits = NA)
