"""`kvbench workload describe`: the figures it reports for a small known workload, its plots, its errors."""

from __future__ import annotations

import json

import pytest

from kvbench.cli import main as kvbench
from kvbench.commands.describe import describe
from kvbench.compose import compose as compose_config


@pytest.fixture
def requests_file(tmp_path):
    """Five requests one second apart: #1 opens with #0's first 16 tokens; #2 needs 530 tokens."""
    records = [
        {"prompt_token_ids": list(range(20)), "output_len": 10, "arrival_time": 0.0},
        {"prompt_token_ids": list(range(16)) + [99, 98], "output_len": 20, "arrival_time": 1.0},
        {"prompt_len": 500, "output_len": 30, "arrival_time": 2.0},
        {"prompt_len": 40, "output_len": 40, "arrival_time": 3.0},
        {"prompt_len": 60, "output_len": 50, "arrival_time": 4.0},
    ]
    path = tmp_path / "requests.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_figures_of_a_known_workload(requests_file):
    cfg = compose_config(["workload=custom", f"workload.path={requests_file}", "model=tiny", "strategy.block_size=8"])
    figures, requests = describe(cfg)
    assert [r.request_id for r in requests] == [0, 1, 3, 4]  # tiny's max_model_len is 512
    assert (figures["num_requests"], figures["num_kept"], figures["num_dropped_too_long"]) == (5, 4, 1)
    assert figures["duration_s"] == 4.0 and figures["arrival_rate_per_s"] == 0.75
    prompt_figures = (figures["prompt_tokens_mean"], figures["prompt_tokens_p50"], figures["prompt_tokens_max"])
    assert prompt_figures == (34.5, 30.0, 60)
    assert (figures["output_tokens_mean"], figures["output_tokens_max"]) == (30.0, 50)
    assert figures["num_sessions"] == 0
    # #1 finds #0's first two 8-token blocks; nothing else is shared.
    assert figures["prefix_hit_tokens_bound"] == 16
    assert figures["prefix_hit_rate_bound"] == 16 / (20 + 18 + 40 + 60)
    assert figures["models_keeping_all"]["tiny"] == 4 and figures["models_keeping_all"]["mistral-7b"] == 5
    assert figures["max_total_tokens"] == 530


def test_sessions_are_counted():
    figures, requests = describe(compose_config(["workload=sharegpt_multiturn", "workload.num_sessions=6",
                                                 "model=mistral-7b"]))
    assert figures["num_sessions"] == 6
    assert figures["mean_turns_per_session"] == len(requests) / 6
    assert figures["max_turns"] == max(r.turn for r in requests) + 1
    assert figures["prefix_hit_rate_bound"] > 0  # later turns quote earlier ones


def test_command_prints_and_plots(requests_file, tmp_path, capsys):
    plots = tmp_path / "plots"
    assert kvbench(["workload", "describe", "workload=custom", f"workload.path={requests_file}", "model=tiny", "--plot", str(plots)]) == 0
    out = capsys.readouterr().out
    assert "keeps 4, drops 1" in out and "keep every request: " in out and "mistral-7b" in out
    for name in ("custom_lengths.png", "custom_arrivals.png"):
        assert (plots / name).read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["workload=mooncake"], "workload=mooncake needs workload.path=<file>"),
        (["workload=custom", "workload.typo=1"], "workload.typo"),
        (["workload=alpaca"], "non-commercial"),
    ],
)
def test_errors_are_one_line_and_exit_2(overrides, message, capsys):
    assert kvbench(["workload", "describe", *overrides]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kvbench: error:") and message in err
