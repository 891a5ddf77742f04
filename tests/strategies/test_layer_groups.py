"""Window-aware paged strategies: a block table per layer group, blocks released out of the window.

Exact block ids on tiny pools (the order a released block is reused in is vLLM's, checked step by
step against vLLM itself in tests/fidelity/test_vllm_sliding_window.py), the invariant checker over
every group after each call, and the shared state machine with sliding-window groups.
"""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from kvbench.model_spec import KVGroup
from kvbench.strategies import STRATEGIES
from kvbench.strategies.group_tables import NULL_BLOCK_ID, GroupedTables
from kvbench.strategies.invariants import check
from kvbench.strategies.paged_tables import PagedTables

FULL = KVGroup(0, 1)
WINDOWED = ("paged", "paged_cow")
WINDOW_AWARE = (*WINDOWED, "paged_prefix")  # paged_prefix: also tests/strategies/test_window_prefix.py


def make_grouped(name: str, num_blocks: int, block_size: int, max_model_len: int = 64, groups=None, **options):
    config = OmegaConf.to_object(OmegaConf.structured(STRATEGIES.schema(name)))
    config.block_size = block_size
    for key, value in options.items():
        setattr(config, key, value)
    return STRATEGIES.get(name)(config, num_blocks, max_model_len, kv_groups=groups)


def free_slots(strategy) -> int:
    """Free slots, cached ones included (paged_prefix keeps a released block's content cached)."""
    usage = strategy.usage()
    return usage.free_slots + usage.cached_slots


def factory(groups):
    def make(name, num_blocks, block_size, max_model_len=64, **options):
        return make_grouped(name, num_blocks, block_size, max_model_len, groups, **options)

    return make


@pytest.mark.parametrize("name", WINDOW_AWARE)
def test_full_attention_models_keep_the_plain_tables(name):
    """One full-attention group is exactly the strategy every full-attention model always had."""
    strategy = make_grouped(name, 8, 2, groups=[KVGroup(0, 40)])
    assert type(strategy.tables) is PagedTables and strategy.num_kv_groups == 1
    assert type(make_grouped(name, 8, 2, groups=None).tables) is PagedTables


@pytest.mark.parametrize("name", WINDOWED)
def test_a_sliding_group_releases_the_block_that_leaves_the_window(name, seq_factory):
    # Window 4, blocks of 2 tokens: with c tokens computed, the first (c - 3) // 2 blocks are unread.
    s = make_grouped(name, 10, 2, groups=[FULL, KVGroup(4, 1)])
    seq = seq_factory(0, 5, 9)
    assert s.allocate(seq, 0, 5) == 5  # the prompt; the sliding group's first block leaves at c = 5
    assert s.tables.group_block_tables(0) == [[0, 1, 2], [3, 4, 5]]
    assert free_slots(s) == 4 * 2
    check(s)
    assert s.allocate(seq, 5, 1) == 1  # now released; the next one leaves at c = 7
    assert s.tables.group_block_tables(0) == [[0, 1, 2], [NULL_BLOCK_ID, 4, 5]]
    assert free_slots(s) == 5 * 2
    check(s)
    assert s.allocate(seq, 6, 1) == 1  # both groups cross a block boundary: the released block 3 goes first
    assert s.tables.group_block_tables(0) == [[0, 1, 2, 3], [NULL_BLOCK_ID, 4, 5, 6]]
    check(s)
    assert s.allocate(seq, 7, 1) == 1
    assert s.tables.group_block_tables(0) == [[0, 1, 2, 3], [NULL_BLOCK_ID, NULL_BLOCK_ID, 5, 6]]
    assert s.block_table(0) == [0, 1, 2, 3]  # the first group's table
    check(s)
    assert s.free(0, 8)
    assert free_slots(s) == 10 * 2
    check(s)


def test_a_window_only_model_holds_its_window_alone(seq_factory):
    """Mistral's case: one sliding group, a long decode holds about window / block_size blocks."""
    s = make_grouped("paged", 6, 4, max_model_len=128, groups=[KVGroup(8, 1)])
    seq = seq_factory(0, 4, 100)
    headroom = s.allocate(seq, 0, 4)
    computed = 4
    while computed < 100:
        headroom = s.allocate(seq, computed, 1)
        computed += 1
        held = [b for b in s.block_table(0) if b != NULL_BLOCK_ID]
        assert len(held) <= 8 // 4 + 1, f"{computed} tokens hold {held}"
        check(s)
    assert headroom >= 1 and free_slots(s) >= 3 * 4


@pytest.mark.parametrize("name", WINDOW_AWARE)
def test_a_refused_growth_still_releases_what_left_the_window(name, seq_factory):
    """As vLLM's allocate_slots: the release comes first, the refusal changes nothing else."""
    s = make_grouped(name, 6, 2, groups=[FULL, KVGroup(2, 1)])
    a, b = seq_factory(0, 4, 9), seq_factory(1, 2, 9)
    assert s.allocate(a, 0, 4) is not None  # 2 + 2 blocks
    assert s.allocate(b, 0, 2) is not None  # 1 + 1 blocks: the pool is full
    version = s.prefix_cache_version()
    assert s.allocate(a, 4, 1) is None  # needs 2, releases 1
    assert s.tables.group_block_tables(0)[1][0] == NULL_BLOCK_ID
    assert free_slots(s) == 2 and s.prefix_cache_version() != version
    check(s)


@pytest.mark.parametrize("name", WINDOW_AWARE)
def test_forks_keep_the_released_blocks_released(name, seq_factory, seq_type):
    s = make_grouped(name, 16, 2, groups=[FULL, KVGroup(2, 1)])
    parent = seq_factory(0, 6, 12)
    s.allocate(parent, 0, 6)
    s.allocate(parent, 6, 1)  # releases the sliding group's first two blocks
    child = seq_type(1, parent.stream, 12)
    assert s.fork(0, child, 7)
    tables = s.tables.group_block_tables(1)
    assert tables[1][:2] == [NULL_BLOCK_ID, NULL_BLOCK_ID]
    check(s)
    s.free(1, 7)  # with paged_cow the parent still holds every block
    assert s.free(0, 7)
    check(s)
    assert free_slots(s) == 16 * 2


@pytest.mark.parametrize("name", WINDOW_AWARE)
def test_can_hold_counts_a_sliding_group_as_window_plus_the_tokens_in_flight(name, seq_factory):
    s = make_grouped(name, 7, 4, max_model_len=256, groups=[FULL, KVGroup(4, 1)])
    s.max_num_batched_tokens = 4  # set by the scheduler; vLLM counts two batches in flight
    seq = seq_factory(0, 20, 21)
    # full: 5 blocks; sliding: min(5, ceil((4 - 1 + 8) / 4) + 1 = 4) -> 9 > 7
    assert not s.can_hold(seq, 0, 20)
    assert s.can_hold(seq, 0, 8)  # 2 + 2


@pytest.mark.parametrize("name", WINDOW_AWARE)
def test_state_machine_with_sliding_window_groups(name, strategy_machine):
    strategy_machine(name, factory=factory([FULL, KVGroup(3, 1), KVGroup(3, 1)]))


@pytest.mark.parametrize("name", WINDOW_AWARE)
def test_state_machine_with_one_sliding_group(name, strategy_machine):
    strategy_machine(name, factory=factory([KVGroup(5, 1)]))


@pytest.mark.parametrize("name", WINDOW_AWARE)
def test_grouped_tables_report_each_groups_blocks(name, seq_factory):
    """Exact held blocks and token slots per group (window 2, blocks of 2): the breakdown's
    per-group columns, recounted from the tables by the invariant checker after each call."""
    s = make_grouped(name, 12, 2, groups=[FULL, KVGroup(2, 1)])
    seq = seq_factory(0, 6, 9)
    s.allocate(seq, 0, 6)
    check(s)
    assert s.tables.group_held_blocks == [3, 3]
    assert s.usage().group_held_slots == (6, 6) and s.usage().group_token_slots == (0, 0)  # not written yet
    s.allocate(seq, 6, 1)  # 6 tokens written; the sliding group keeps the block of tokens 4-5
    check(s)
    assert isinstance(s.tables, GroupedTables)
    assert s.tables.group_held_blocks == [4, 2]
    assert s.usage().group_held_slots == (8, 4) and s.usage().group_token_slots == (6, 2)
    # Tokens written since the last call (lazy decoding) count in every group.
    assert s.usage().with_unsynced(2 * 1).group_token_slots == (7, 3)
    s.free(0, 7)
    check(s)
    assert s.usage().group_held_slots == (0, 0) and s.usage().group_token_slots == (0, 0)


@pytest.mark.parametrize("group_pools, grows", [("shared", True), ("static", False)])
def test_static_group_pools_cannot_lend_a_sliding_groups_blocks_to_the_full_group(group_pools, grows, seq_factory):
    """8 blocks, a full and a window-2 group: static pools give each group 4. The full group's
    fifth block is refused there, though the sliding group released blocks the shared pool lends."""
    s = make_grouped("paged", 8, 2, groups=[FULL, KVGroup(2, 1)], group_pools=group_pools)
    seq = seq_factory(0, 8, 12)
    assert s.allocate(seq, 0, 8) is not None  # 4 + 4 blocks
    check(s)
    assert (s.allocate(seq, 8, 1) is not None) is grows  # the sliding group releases 3, the full group needs a 5th
    check(s)
    assert s.tables.group_held_blocks == ([5, 2] if grows else [4, 1])
    assert free_slots(s) == (1 if grows else 3) * 2


def test_a_bad_group_pools_value_is_named():
    with pytest.raises(ValueError, match="strategy.group_pools='split': one of shared, static"):
        make_grouped("paged", 8, 2, groups=None, group_pools="split")


def test_state_machine_with_static_group_pools(strategy_machine):
    def make(name, num_blocks, block_size, max_model_len=64, **options):
        return make_grouped(name, num_blocks, block_size, max_model_len, [FULL, KVGroup(3, 1)], group_pools="static")

    strategy_machine("paged", factory=make)
