"""Untrusted RDS content: each bad shape gets its own error, and no R code from the file ever runs."""

from pathlib import Path

import pytest

from mmm_backfill import errors
from worker.summarize.extract import read_run

#: R expression run by every hostile object if it is ever evaluated.
TRAP = 'file.create("{canary}")'


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, run_r):
    root = tmp_path_factory.mktemp("hostile")
    canary = root / "CODE_RAN"
    trap = TRAP.format(canary=canary)
    df = 'data.frame(solID=c("a","b"), nrmse=c(0.1,0.2), robynPareto=c(1,NA), stringsAsFactors=FALSE)'
    objects = {
        "active_binding_env": f'{{e <- new.env(); makeActiveBinding("resultHypParam", function() {trap}, e); e}}',
        "promise_in_env_as_table": f'list(resultHypParam={{e <- new.env(); delayedAssign("x", {trap}, '
        f"assign.env=e); e}})",
        "closure_as_table": f"list(resultHypParam=function() {trap})",
        "formula_as_table": f"list(resultHypParam=quote({trap}))",
        "character_vector": 'c("not", "a", "robyn", "output")',
        "list_without_table": "list(a=1, b=2)",
        "table_not_data_frame": "list(resultHypParam=list(solID=1))",
        "zero_models": "list(resultHypParam=data.frame(solID=character(0), nrmse=numeric(0)))",
        "no_id_column": "list(resultHypParam=data.frame(nrmse=c(0.1, 0.2)))",
        "no_nrmse_column": 'list(resultHypParam=data.frame(solID=c("a","b")))',
        "character_nrmse": 'list(resultHypParam=data.frame(solID="a", nrmse="low", stringsAsFactors=FALSE))',
        "closure_column": f'list(resultHypParam=structure(list(solID="a", nrmse=function() {trap}), '
        'class="data.frame", row.names=1L))',
        "list_column": 'list(resultHypParam=structure(list(solID="a", nrmse=list(1)), class="data.frame", '
        "row.names=1L))",
        "s3_class_with_method": f"{{print.evil <- function(x, ...) {trap}; structure(list(resultHypParam={df}), "
        'class="evil")}',
    }
    paths = {}
    for name, expr in objects.items():
        path = root / f"{name}.RDS"
        run_r(f'saveRDS({expr}, "{path}")')
        paths[name] = path
    return paths, canary


@pytest.mark.parametrize(
    "name,error",
    [
        ("active_binding_env", errors.UnsafeObject),
        ("promise_in_env_as_table", errors.UnsafeObject),
        ("closure_as_table", errors.UnsafeObject),
        ("formula_as_table", errors.UnsafeObject),
        ("character_vector", errors.WrongObject),
        ("list_without_table", errors.WrongObject),
        ("table_not_data_frame", errors.WrongObject),
        ("zero_models", errors.EmptyModels),
        ("no_id_column", errors.MissingColumn),
        ("no_nrmse_column", errors.MissingColumn),
        ("character_nrmse", errors.WrongColumnType),
        ("closure_column", errors.UnsafeObject),
        ("list_column", errors.WrongColumnType),
    ],
)
def test_hostile_object_raises_its_own_error_and_runs_no_code(hostile, name, error):
    paths, canary = hostile
    with pytest.raises(error) as info:
        data = read_run({"OutputCollect.RDS": str(paths[name])})
        if not data.models:
            raise errors.EmptyModels("no models")
    assert type(info.value) is error
    assert not canary.exists(), f"R code from {name} ran"


def test_object_with_an_s3_class_is_read_without_dispatch(hostile):
    paths, canary = hostile
    data = read_run({"OutputCollect.RDS": str(paths["s3_class_with_method"])})
    assert [m.model_id for m in data.models] == ["a", "b"]
    assert not canary.exists()


@pytest.mark.parametrize(
    "name,error", [("character_vector", errors.WrongObject), ("active_binding_env", errors.UnsafeObject)]
)
def test_input_collect_of_the_wrong_kind_is_refused(hostile, generated_runs, name, error):
    paths, canary = hostile
    files = {
        "OutputCollect.RDS": str(Path(generated_runs["standard"]) / "OutputCollect.RDS"),
        "InputCollect.RDS": str(paths[name]),
    }
    with pytest.raises(error):
        read_run(files)
    assert not canary.exists()
