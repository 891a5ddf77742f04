"""Tiered offload of the prefix cache (strategies/tiers.py): exact tier contents and block ids on tiny pools."""

import pytest

from kvbench.strategies.block_pool import BlockPool
from kvbench.strategies.invariants import InvariantError, check
from kvbench.strategies.prefix_index import KeyChain
from kvbench.strategies.tiers import TiersConfig, TierSpec, WritePolicy
from kvbench.tokens import TokenSequence

BLOCK_SIZE = 4


def tiers_config(cpu_blocks=0, disk_blocks=0, write="write_back", overlap=False) -> TiersConfig:
    """One K/V byte per token, so a tier's capacity in bytes is its blocks x BLOCK_SIZE."""
    return TiersConfig(
        cpu=TierSpec(cpu_blocks * BLOCK_SIZE, bytes_per_s=8.0, latency_s=0.0),
        disk=TierSpec(disk_blocks * BLOCK_SIZE, bytes_per_s=2.0, latency_s=0.5),
        write=WritePolicy(write), overlap_load=overlap, kv_bytes_per_token=1,
    )


def names_of(prompt: TokenSequence, label: str, num_blocks: int) -> dict:
    chain = KeyChain(prompt, BLOCK_SIZE)
    return {chain.key(i): f"{label}{i}" for i in range(num_blocks)}


def contents(st, names) -> dict[str, list[str]]:
    return {tier: [names.get(k, "?") for k in keys] for tier, keys in st.tiers.contents().items()}


DOC = TokenSequence.synthetic("doc", 12)
OTHER = TokenSequence.synthetic("other", 20)
NAMES = {**names_of(DOC, "doc", 3), **names_of(OTHER, "other", 5)}


def test_without_a_tier_capacity_the_strategy_is_plain_paged_prefix(strategy_factory):
    st = strategy_factory("paged_prefix", num_blocks=5, block_size=BLOCK_SIZE)
    assert st.tiers is None and type(st.pool) is BlockPool and not st.loads_kv
    assert st.event_names() == ("cow_copies", "fork_copied_blocks", "evicted_blocks")


def test_evicted_blocks_go_down_the_tiers_and_a_hit_loads_them_back(strategy_factory, seq_factory):
    st = strategy_factory("paged_prefix", num_blocks=5, block_size=BLOCK_SIZE, tiers=tiers_config(2, 4))
    assert st.allocate(seq_factory(0, DOC, final=13), 0, 12) and st.block_table(0) == [0, 1, 2]
    st.free(0, 12)
    # Five blocks for another prompt: the two never used, then the doc's blocks tail first. Each
    # evicted block goes to the CPU tier; the third pushes the least recent (doc2) to disk.
    assert st.allocate(seq_factory(1, OTHER, final=21), 0, 20) and st.block_table(1) == [3, 4, 2, 1, 0]
    check(st)
    assert contents(st, NAMES) == {"cpu": ["doc1", "doc0"], "disk": ["doc2"]}
    assert st.counters["tier_cpu_store_bytes"] == 3 * BLOCK_SIZE and st.counters["tier_disk_store_bytes"] == BLOCK_SIZE
    st.free(1, 20)
    again = seq_factory(2, DOC, final=13)
    # Nothing of the doc is on the GPU; the hit runs through the CPU (doc0, doc1) and disk (doc2).
    assert st.cached_prefix_tokens(again, 13) == 12
    assert st.pop_kv_load() == (0.0, False)  # looking changed nothing
    assert st.allocate(again, 12, 1) is not None
    # Fresh blocks, freed tail first by the other prompt: 0, 1, 2 hold the loaded doc, 4 is new.
    assert st.block_table(2) == [0, 1, 2, 4]
    check(st)
    assert st.counters["tier_cpu_hit_tokens"] == 8 and st.counters["tier_disk_hit_tokens"] == 4
    assert st.counters["tier_cpu_load_bytes"] == 8 and st.counters["tier_disk_load_bytes"] == 4
    # cpu: 8 bytes at 8 B/s; disk: 4 bytes at 2 B/s plus its 0.5 s latency.
    assert st.pop_kv_load() == (1.0 + 2.5, False)
    assert st.pop_kv_load() == (0.0, False)
    # The admission evicted four blocks of the other prompt (tail first) into the CPU tier, which
    # pushed the older blocks down to disk (4 blocks: the oldest fell off the bottom).
    assert contents(st, NAMES) == {"cpu": ["other2", "other1"], "disk": ["doc0", "doc1", "other4", "other3"]}
    # The loaded blocks are registered: the next request hits them on the GPU.
    assert st.cached_prefix_tokens(seq_factory(3, DOC, final=13), 13) == 12
    usage = st.usage()
    assert usage.token_slots == 12  # loaded K/V are tokens that exist, inherited by the sequence


def test_write_through_copies_at_registration_so_eviction_moves_nothing(strategy_factory, seq_factory):
    st = strategy_factory("paged_prefix", num_blocks=5, block_size=BLOCK_SIZE, tiers=tiers_config(8, write="write_through"))
    assert st.allocate(seq_factory(0, DOC, final=13), 0, 12)
    assert contents(st, NAMES) == {"cpu": ["doc0", "doc1", "doc2"]}
    assert st.counters["tier_cpu_store_bytes"] == 12
    st.free(0, 12)
    assert st.allocate(seq_factory(1, OTHER, final=21), 0, 20)
    assert st.counters["tier_cpu_store_bytes"] == 12 + 20  # the other prompt's own copies, no demotion
    assert contents(st, NAMES)["cpu"][:3] == ["doc0", "doc1", "doc2"]
    check(st)


def test_a_tier_hit_continues_the_gpu_run(strategy_factory, seq_factory):
    """The doc's head is still on the GPU, its tail only in the CPU tier: one hit over both."""
    st = strategy_factory("paged_prefix", num_blocks=5, block_size=BLOCK_SIZE, tiers=tiers_config(4))
    assert st.allocate(seq_factory(0, DOC, final=13), 0, 12)
    st.free(0, 12)
    assert st.allocate(seq_factory(1, prompt=12, final=12), 0, 12) and st.block_table(1) == [3, 4, 2]
    assert contents(st, NAMES) == {"cpu": ["doc2"]}
    st.free(1, 12)
    again = seq_factory(2, DOC, final=13)
    assert st.cached_prefix_tokens(again, 13) == 12
    assert st.allocate(again, 12, 1)
    assert st.block_table(2)[:2] == [0, 1]  # revived from the GPU cache
    assert st.counters["tier_cpu_hit_tokens"] == 4
    check(st)


def test_loads_overlap_the_step_when_asked(strategy_factory, seq_factory):
    st = strategy_factory("paged_prefix", num_blocks=4, block_size=BLOCK_SIZE, tiers=tiers_config(4, overlap=True))
    assert st.allocate(seq_factory(0, DOC, final=13), 0, 12)
    st.free(0, 12)
    assert st.allocate(seq_factory(1, prompt=16, final=16), 0, 16)
    st.free(1, 16)
    assert st.allocate(seq_factory(2, DOC, final=13), 12, 1)
    assert st.pop_kv_load() == (1.5, True)


def test_the_checker_catches_a_block_in_two_tiers(strategy_factory, seq_factory):
    st = strategy_factory("paged_prefix", num_blocks=4, block_size=BLOCK_SIZE, tiers=tiers_config(2, 2))
    assert st.allocate(seq_factory(0, DOC, final=13), 0, 12)
    st.free(0, 12)
    assert st.allocate(seq_factory(1, prompt=16, final=16), 0, 16)
    check(st)
    cpu, disk = st.tiers.stores
    disk.insert(cpu.keys()[0])
    with pytest.raises(InvariantError, match="in tiers cpu and disk"):
        check(st)


def test_the_checker_catches_a_tier_over_capacity(strategy_factory, seq_factory):
    st = strategy_factory("paged_prefix", num_blocks=4, block_size=BLOCK_SIZE, tiers=tiers_config(2))
    st.tiers.stores[0].capacity_blocks = 5
    for key in ("a", "b", "c"):
        st.tiers.stores[0].insert(key)
    st.tiers.stores[0].capacity_blocks = 2
    with pytest.raises(InvariantError, match="more than its 2"):
        check(st)


@pytest.mark.parametrize("write", ["write_back", "write_through"])
def test_state_machine_with_tiers(write, strategy_machine):
    """The shared machine's admits and frees demote evicted blocks and load tier hits back; the
    invariant checker (tiers included) runs after every operation, and a refused admission must
    leave the tiers as they were (rule 1: the snapshot holds their contents)."""
    tiers = TiersConfig(
        cpu=TierSpec(8, bytes_per_s=8.0), disk=TierSpec(8, bytes_per_s=2.0, latency_s=0.5),
        write=WritePolicy(write), kv_bytes_per_token=1,
    )
    strategy_machine("paged_prefix", {"tiers": tiers})


def test_write_through_copies_of_never_computed_blocks_are_dropped(strategy_factory, seq_factory):
    """A sequence preempted before its step ran registered blocks it never computed: their
    write-through copies must not be found either."""
    st = strategy_factory("paged_prefix", num_blocks=5, block_size=BLOCK_SIZE, tiers=tiers_config(8, write="write_through"))
    assert st.allocate(seq_factory(0, DOC, final=13), 0, 12)
    assert contents(st, NAMES) == {"cpu": ["doc0", "doc1", "doc2"]}
    st.free(0, 4)  # only the first block was computed
    assert contents(st, NAMES) == {"cpu": ["doc0"]}
    check(st)
    assert st.cached_prefix_tokens(seq_factory(1, DOC, final=13), 13) == 4
