"""kvbench.tier_replay: prompts through the tiered prefix cache alone, the hit rate against capacity."""

from kvbench.request import Request
from kvbench.tier_replay import replay_hit_rate
from kvbench.tokens import Synthetic, TokenSequence


def request(i: int, *segments) -> Request:
    return Request(i, float(i), TokenSequence(segments), num_output_tokens=1)


DOC = Synthetic("doc", 8)
REQUESTS = [
    request(0, DOC, Synthetic("x0", 4)),
    request(1, DOC, Synthetic("x1", 4)),
    request(2, Synthetic("other", 12)),
    request(3, Synthetic("other2", 12)),
    request(4, DOC, Synthetic("x4", 4)),
]


def test_a_cache_that_holds_everything_hits_every_shared_block():
    result = replay_hit_rate(REQUESTS, capacity_tokens=1000, block_size=4)
    assert (result.prompt_tokens, result.hit_tokens) == (60, 16)
    # The GPU pool (four blocks) lost the doc to the two other prompts: the last hit came from the tier.
    assert result.tier_hit_tokens == 8


def test_a_small_tier_loses_the_doc_to_the_other_prompts():
    # Two blocks of tier, written through: the other prompts' six blocks push the doc out.
    result = replay_hit_rate(REQUESTS, capacity_tokens=8, block_size=4)
    assert (result.hit_tokens, result.tier_hit_tokens) == (8, 0)
