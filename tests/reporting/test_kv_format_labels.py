"""Chart titles name the KV format of a scenario when it is not the model's own dtype."""

import pandas as pd

from kvbench.reporting.runs import CONFIG_PREFIX
from kvbench.reporting.series import scenario_label


def run_row(**extra) -> pd.Series:
    return pd.Series({"workload": "sharegpt", "model": "llama-3-8b", "hardware": "h100-sxm", "tensor_parallel": 1,
                      "engine": "sim", "scheduler": "default", **extra})


def test_a_quantized_format_is_named_and_the_default_is_not():
    assert scenario_label(run_row(kv_dtype="int4"), []) == "sharegpt · llama-3-8b · h100-sxm · sim · KV int4"
    assert scenario_label(run_row(kv_dtype="auto"), []) == "sharegpt · llama-3-8b · h100-sxm · sim"
    assert scenario_label(run_row(), []) == "sharegpt · llama-3-8b · h100-sxm · sim"  # runs from before formats


def test_a_format_that_varies_is_named_once_as_a_free_key():
    key = f"{CONFIG_PREFIX}model.kv_dtype"
    label = scenario_label(run_row(kv_dtype="fp8_e4m3", **{key: "fp8_e4m3"}), [key])
    assert label == "sharegpt · llama-3-8b · h100-sxm · sim (model.kv_dtype=fp8_e4m3)"
