"""The differential harness itself, without vLLM: its cases and its comparison."""

from kvbench.oracle import kvbench_replay
from kvbench.oracle.cases import make_case
from kvbench.oracle.compare import first_divergence
from kvbench.oracle.state import StepState


def test_cases_are_seeded_and_cover_the_settings():
    cases = [make_case(seed) for seed in range(60)]
    assert make_case(7) == cases[7]
    assert {c.block_size for c in cases} == {1, 16, 32}
    assert min(c.max_num_seqs for c in cases) == 1 and max(c.max_num_seqs for c in cases) == 64


def test_a_replay_is_compared_step_by_step():
    case = make_case(3)
    steps = list(kvbench_replay.replay(case))
    assert sum(len(s.preempted) for s in steps) > 0 and sum(s.num_prefix_hit_tokens for s in steps) > 0
    assert first_divergence(steps, kvbench_replay.replay(case)) is None
    changed = list(steps)
    changed[5] = StepState(**{**changed[5].__dict__, "num_free_blocks": changed[5].num_free_blocks + 1})
    divergence = first_divergence(steps, changed)
    assert divergence.step_index == 5 and divergence.differences[0].startswith("num_free_blocks")
    assert "no step" in str(first_divergence(steps, steps[:-1]))
