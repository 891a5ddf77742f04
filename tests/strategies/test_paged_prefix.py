"""`paged_prefix` behaves as vLLM v1's automatic prefix caching."""

import pytest

from kvbench.strategies.invariants import check
from kvbench.tokens import Synthetic, TokenSequence


def test_a_second_request_reuses_the_full_blocks_of_the_first(strategy_factory, seq_factory, shared_prompt):
    st = strategy_factory("paged_prefix", num_blocks=11, block_size=4)
    a = seq_factory(0, shared_prompt(8, 2, "a"), final=12)
    assert st.cached_prefix_tokens(a, 10) == 0
    assert st.allocate(a, 0, 10) and st.block_table(0) == [0, 1, 2]
    b = seq_factory(1, shared_prompt(8, 3, "b"), final=12)
    # Registered at allocation, before any step ran: requests admitted in one step share.
    assert st.cached_prefix_tokens(b, 11) == 8
    assert st.allocate(b, 8, 3) and st.block_table(1) == [0, 1, 3]
    assert st.snapshot().ref_cnt[:4] == [2, 2, 1, 1]
    assert st.usage().shared_saved_slots == 8
    check(st)


def test_a_hit_is_capped_below_the_prompt_length(strategy_factory, seq_factory):
    st = strategy_factory("paged_prefix", num_blocks=8, block_size=4)
    prompt = TokenSequence.synthetic("same", 8)
    assert st.allocate(seq_factory(0, prompt, final=9), 0, 8)
    twin = seq_factory(1, prompt, final=9)
    # Both blocks are cached, but the last prompt token must be computed for its logits.
    assert st.cached_prefix_tokens(twin, 8) == 4
    assert st.cached_prefix_tokens(twin, 9) == 8


def test_a_block_hits_only_after_the_same_prefix(strategy_factory, seq_factory):
    st = strategy_factory("paged_prefix", num_blocks=8, block_size=4)
    x = TokenSequence((Synthetic("a", 4), Synthetic("b", 4)))
    y = TokenSequence((Synthetic("c", 4), Synthetic("b", 4)))  # same second block, other parent
    assert st.allocate(seq_factory(0, x, final=9), 0, 8)
    assert st.cached_prefix_tokens(seq_factory(1, y, final=10), 9) == 0


def test_freed_blocks_stay_cached_and_are_evicted_tail_first(strategy_factory, seq_factory):
    st = strategy_factory("paged_prefix", num_blocks=7, block_size=4)
    prompt = TokenSequence.synthetic("doc", 12)
    assert st.allocate(seq_factory(0, prompt, final=13), 0, 12)
    assert st.block_table(0) == [0, 1, 2]
    st.free(0, 12)
    check(st)
    snap = st.snapshot()
    assert snap.free_queue == [3, 4, 5, 6, 2, 1, 0] and snap.cached == {0, 1, 2}
    assert st.usage().cached_slots == 12
    # An unrelated request takes five blocks: the four never used, then the first one's tail.
    other = seq_factory(1, prompt=20, final=20)
    assert st.allocate(other, 0, 20)
    assert st.block_table(1) == [3, 4, 5, 6, 2]
    assert st.pool.num_evicted_blocks == 1 and st.snapshot().cached == {0, 1}
    st.free(1, 20)
    check(st)
    again = seq_factory(2, prompt, final=13)
    assert st.cached_prefix_tokens(again, 12) == 8  # the head survived
    assert st.allocate(again, 8, 4)
    assert st.block_table(2) == [0, 1, 2]
    check(st)


def test_generated_blocks_are_registered_when_they_fill(strategy_factory, seq_factory):
    st = strategy_factory("paged_prefix", num_blocks=8, block_size=4)
    a = seq_factory(0, prompt=3, final=10)
    assert st.allocate(a, 0, 3)
    # Headroom counts from the synced length (0): positions 0-2 are the prompt; the write at
    # position 3 fills block 0, so it needs a call, which registers the block.
    assert st.headroom(0) == 3
    assert not st.snapshot().registered
    assert st.allocate(a, 3, 1)
    assert st.snapshot().registered == {0}
    assert st.headroom(0) == 1  # position 3 itself; position 4 needs a new block
    assert st.allocate(a, 4, 1) and st.block_table(0) == [0, 1]
    assert st.headroom(0) == 3  # positions 4, 5, 6; position 7 fills block 1
    check(st)


def decode_ticks(st, first: int, last: int) -> None:
    """Decode ticks in which no sequence calls the strategy (lazy decoding between its events)."""
    for tick in range(first, last + 1):
        st.begin_decode_tick(tick)
        st.end_decode_tick(tick)


def start_decoding(strategy_factory, seq_factory):
    """Sequence 0 prefills a 4-token prompt, then decodes its reply from tick 1: the strategy, the
    prompt, and a request quoting the prompt and the reply's first block."""
    st = strategy_factory("paged_prefix", num_blocks=8, block_size=4)
    prompt = TokenSequence.synthetic("doc", 4)
    a = seq_factory(0, prompt, final=16, gen="reply")
    assert st.allocate(a, 0, 4)
    st.begin_decode_tick(1)
    assert st.allocate(a, 4, 1) == 4  # a decode: it writes positions 4-7 in ticks 1-4, one call
    st.end_decode_tick(1)
    quote = seq_factory(1, TokenSequence((*prompt.segments, Synthetic(("gen", "reply"), 4))), final=12)
    return st, prompt, quote


def test_a_decoding_sequence_is_not_stopped_where_it_fills_a_block(strategy_factory, seq_factory):
    st, _, quote = start_decoding(strategy_factory, seq_factory)
    assert st.headroom(0) == 4
    # The quoting request finds block 1 from the tick whose decode fills it (position 7: tick 4).
    decode_ticks(st, 2, 3)
    assert st.cached_prefix_tokens(quote, 9) == 4
    check(st)
    decode_ticks(st, 4, 4)
    assert st.cached_prefix_tokens(quote, 9) == 8
    assert st.allocate(quote, 8, 1) and st.block_table(1)[:2] == st.block_table(0)
    check(st)


def test_a_block_a_freed_sequence_would_have_filled_is_never_registered(strategy_factory, seq_factory):
    st, prompt, quote = start_decoding(strategy_factory, seq_factory)
    decode_ticks(st, 2, 2)
    st.free(0, 6)  # preempted after tick 2: positions 4 and 5 computed, block 1 not full
    # Admitted again under the same id, it computes more slowly (a prefill in chunks).
    assert st.allocate(seq_factory(0, prompt, final=16, gen="reply"), 4, 1)
    decode_ticks(st, 3, 5)
    assert st.cached_prefix_tokens(quote, 9) == 4
    check(st)


def test_blocks_registered_for_tokens_never_computed_are_forgotten(strategy_factory, seq_factory):
    st = strategy_factory("paged_prefix", num_blocks=8, block_size=4)
    prompt = TokenSequence.synthetic("doc", 8)
    a = seq_factory(0, prompt, final=9)
    assert st.allocate(a, 0, 8)  # registers both blocks, to be computed by this step
    st.free(0, 0)  # preempted before the step ran
    check(st)
    assert not st.pool.cached
    assert st.cached_prefix_tokens(seq_factory(1, prompt, final=9), 9) == 0


def test_fork_shares_cached_blocks_and_continues_the_key_chain(strategy_factory, seq_factory):
    st = strategy_factory("paged_prefix", num_blocks=8, block_size=4)
    a = seq_factory(0, prompt=9, final=14)
    assert st.allocate(a, 0, 9)
    child = seq_factory(1, a.stream.truncate(9), final=14, gen="child")
    assert st.fork(0, child, 9)
    assert st.block_table(1) == st.block_table(0) == [0, 1, 2]
    for seq in (a, child):
        for position in range(9, 12):
            assert st.allocate(seq, position, 1)
    assert st.counters["cow_copies"] == 1
    check(st)
    # Both filled block 2 with different generated tokens: both are cached under their own keys.
    assert len(st.pool.cached) == 4


def test_a_recomputed_twin_is_registered_and_keeps_the_content_findable(strategy_factory, seq_factory):
    st = strategy_factory("paged_prefix", num_blocks=4, block_size=2)
    doc = TokenSequence.synthetic("doc", 5)
    assert st.allocate(seq_factory(0, doc.truncate(4), final=5), 0, 4) and st.block_table(0) == [0, 1]
    # An exact repeat hits one block short (its last token is computed): block 2 holds block 1's
    # content again, and vLLM 0.33.0 registers both under the same hash.
    twin = seq_factory(1, doc.truncate(4), final=5)
    assert st.cached_prefix_tokens(twin, 4) == 2
    assert st.allocate(twin, 2, 2) and st.block_table(1) == [0, 2]
    assert st.snapshot().registered == {0, 1, 2}
    check(st)
    st.free(0, 4)
    assert st.snapshot().free_queue == [3, 1]
    assert st.allocate(seq_factory(2, prompt=4, final=4), 0, 4) and st.block_table(2) == [3, 1]  # evicts block 1
    check(st)
    later = seq_factory(3, doc, final=6)
    assert st.cached_prefix_tokens(later, 5) == 4  # block 2 still serves the second block
    st.free(2, 4)
    assert st.allocate(later, 4, 1) and st.block_table(3) == [0, 2, 1]
    check(st)


def test_a_lookup_finds_the_earliest_registered_twin(strategy_factory, seq_factory):
    st = strategy_factory("paged_prefix", num_blocks=6, block_size=1)
    doc = TokenSequence.synthetic("doc", 3)
    assert st.allocate(seq_factory(0, doc.truncate(2), final=3), 0, 2) and st.block_table(0) == [0, 1]
    assert st.allocate(seq_factory(1, doc.truncate(2), final=3), 1, 1) and st.block_table(1) == [0, 2]
    assert st.allocate(seq_factory(2, doc, final=4), 2, 1) and st.block_table(2) == [0, 1, 3]
    st.free(2, 3)
    st.free(0, 2)
    check(st)
    assert st.snapshot().free_queue == [4, 5, 3, 1]
    # Blocks 1 and 2 hold the same content: a lookup finds block 1, registered first.
    assert st.allocate(seq_factory(3, doc, final=4), 2, 1) and st.block_table(3) == [0, 1, 4]
    check(st)


# What the five sequences generate (sequences i and i + 3 share a prompt): twins (two pairs generate
# the same stream), every output its own (the tables then evict by themselves, without twins), or
# outputs whose block keys differ but hash alike (CPython: hash(-1) == hash(-2)); these after
# prompts of whole blocks, so that the first colliding block is one a decode fills.
OUTPUT_KEYS = {"twins": lambda i: ("reply", i % 3), "unique": lambda i: ("reply", i),
               "colliding": lambda i: ("reply", -1 - i // 3)}
PROMPT_LENGTHS = {"twins": lambda i: 3 + 2 * i, "unique": lambda i: 3 + 2 * i, "colliding": lambda i: 4 * (i + 1)}


@pytest.mark.parametrize("told", [False, True], ids=["stopped", "told"])
@pytest.mark.parametrize("outputs", sorted(OUTPUT_KEYS))
@pytest.mark.parametrize("block_size", [1, 2, 4])
@pytest.mark.parametrize("num_blocks", [9, 40])
def test_a_ticks_decodes_in_one_call_equal_allocate_one_by_one(strategy_factory, seq_factory, block_size, num_blocks,
                                                               outputs, told):
    """`allocate_decodes` within a decode tick (its one-pass path, which evicts and registers blocks
    itself) leaves, tick after tick, the headrooms, tables, cache and counters of allocating each
    sequence alone: sequences at block boundaries and mid-block, twin, unique and colliding outputs,
    a block size of 1 (a decode's write fills its block at once), and refusals in a tight pool.
    `told`: each is told it starts decoding in tick 1 (`start_decoding`, as the scheduler does), so
    one with a run is not stopped where its prompt's last block fills."""
    batched = strategy_factory("paged_prefix", num_blocks=num_blocks, block_size=block_size)
    one_by_one = strategy_factory("paged_prefix", num_blocks=num_blocks, block_size=block_size)
    prompts = [TokenSequence.synthetic(("prompt", i), PROMPT_LENGTHS[outputs](i)) for i in range(3)]
    output_key = OUTPUT_KEYS[outputs]
    seqs = [seq_factory(i, prompts[i % 3], final=len(prompts[i % 3]) + 14, gen=output_key(i)) for i in range(5)]
    synced, computed, headroom = {}, {}, {}
    for seq in seqs:
        num_prompt_tokens = len(prompts[seq.seq_id % 3])
        num_hit = batched.cached_prefix_tokens(seq, num_prompt_tokens)
        assert num_hit == one_by_one.cached_prefix_tokens(seq, num_prompt_tokens)
        granted = batched.allocate(seq, num_hit, num_prompt_tokens - num_hit)
        assert granted == one_by_one.allocate(seq, num_hit, num_prompt_tokens - num_hit)
        if granted is not None:  # its prompt computed in the first step
            synced[seq.seq_id], computed[seq.seq_id] = num_hit, num_prompt_tokens
            headroom[seq.seq_id] = granted
    if told:
        stopped = dict(headroom)
        for seq_id in computed:
            headroom[seq_id] = batched.start_decoding(seq_id, 0)
            assert headroom[seq_id] == one_by_one.start_decoding(seq_id, 0)
        # Grown where a prompt ends inside a block (not the colliding case's whole-block prompts,
        # nor with one slot a block, where every write fills one).
        assert headroom != stopped or block_size == 1 or outputs == "colliding"
    for tick in range(1, 20):
        batch = [(seq, computed[seq.seq_id]) for seq in seqs  # the unfinished ones out of headroom
                 if seq.seq_id in computed and computed[seq.seq_id] < seq.final_num_kv_tokens
                 and computed[seq.seq_id] - synced[seq.seq_id] == headroom[seq.seq_id]]
        batched.begin_decode_tick(tick)
        one_by_one.begin_decode_tick(tick)
        granted = batched.allocate_decodes(batch)
        assert granted == [one_by_one.allocate(seq, n, 1) for seq, n in batch[: len(granted) + 1]][: len(granted)]
        if len(granted) < len(batch):  # refused, changing nothing: preempted, as the scheduler would
            seq, n = batch[len(granted)]
            assert batched.free(seq.seq_id, synced[seq.seq_id]) == one_by_one.free(seq.seq_id, synced[seq.seq_id])
            del computed[seq.seq_id]
        batched.end_decode_tick(tick)
        one_by_one.end_decode_tick(tick)
        for (seq, n), room in zip(batch, granted):
            synced[seq.seq_id], headroom[seq.seq_id] = n, room
        # Each writes its position of this tick where it has room: after a refusal, the sequences behind
        # it were granted none and wait for the next tick.
        for seq in seqs:
            sid = seq.seq_id
            if sid in computed and computed[sid] < seq.final_num_kv_tokens and computed[sid] - synced[sid] < headroom[sid]:
                computed[sid] += 1
        assert batched.snapshot() == one_by_one.snapshot()
        assert batched.usage() == one_by_one.usage()
        assert batched.prefix_cache_version() == one_by_one.prefix_cache_version()
        assert batched.counters == one_by_one.counters
        assert batched.pool.num_evicted_blocks == one_by_one.pool.num_evicted_blocks
    for seq_id, n in computed.items():  # finished: synced to all it wrote, and checked
        assert batched.free(seq_id, n) == one_by_one.free(seq_id, n)
    assert batched.snapshot() == one_by_one.snapshot()
    check(batched)


def test_prompts_whose_block_keys_share_a_hash_do_not_hit_each_other(strategy_factory, seq_factory):
    # CPython hashes -1 and -2 alike: the two prompts' block keys differ but hash the same, and the
    # block pool files its map by hashes (block_pool.py), so only the content may decide.
    st = strategy_factory("paged_prefix", num_blocks=8, block_size=4)
    minus_one, minus_two = TokenSequence.from_ids([-1] * 8), TokenSequence.from_ids([-2] * 8)
    assert st.allocate(seq_factory(0, minus_one, final=9), 0, 8)
    assert st.cached_prefix_tokens(seq_factory(1, minus_two, final=9), 9) == 0
    assert st.allocate(seq_factory(1, minus_two, final=9), 0, 8)
    assert st.cached_prefix_tokens(seq_factory(2, minus_one, final=9), 9) == 8
    assert st.cached_prefix_tokens(seq_factory(3, minus_two, final=9), 9) == 8
    assert st.block_table(1) == [2, 3]
    check(st)


def test_a_sequences_blocks_are_filed_only_when_a_lookup_reaches_them(strategy_factory, seq_factory, monkeypatch):
    # Most registered blocks are never looked up, and filing one costs its key and a map entry. A
    # sequence's own blocks wait in its PendingRun, counted as cached, until a lookup (or a filing)
    # reaches the content of the first of them: then they are all filed, in one pass over the stream.
    passes = []
    chain_keys = TokenSequence.chain_keys
    monkeypatch.setattr(TokenSequence, "chain_keys", lambda self, *args: passes.append(args[1:]) or chain_keys(self, *args))
    st = strategy_factory("paged_prefix", num_blocks=8, block_size=4)
    prompt = TokenSequence.synthetic("doc", 10)
    seq = seq_factory(0, prompt, final=17, gen="reply")
    assert st.cached_prefix_tokens(seq, 10) == 0
    assert passes == [(0, 1, 4)]  # (start token, blocks, block size): the first block's key, which missed
    assert st.allocate(seq, 0, 10)
    for num_computed in range(10, 17):
        assert st.allocate(seq, num_computed, 1)
    st.free(0, 17)
    assert passes == [(0, 1, 4)] and not st.pool.cached
    assert st.pool.num_cached_free_blocks == 4  # its full blocks: cached, evictable, never filed
    check(st)
    again = seq_factory(1, prompt, final=17, gen="reply")
    assert st.cached_prefix_tokens(again, 17) == 16
    # Its first key misses and names the run: sequence 0's other three are filed; then its own keys.
    assert passes == [(0, 1, 4), (0, 1, 4), (4, 3, 4), (4, 3, 4)]
    assert [b.block_id for b in st.pool.cached.values()] == [0, 1, 2, 3]
    check(st)


def test_a_sequence_whose_first_new_block_is_filed_already_files_as_it_fills(strategy_factory, seq_factory):
    # Its block is a twin, behind the filed one: a run would file it later, perhaps behind a newer
    # twin too, so it is filed at once, as every block before runs existed.
    st = strategy_factory("paged_prefix", num_blocks=8, block_size=4)
    prompt = TokenSequence.synthetic("doc", 8)
    assert st.allocate(seq_factory(0, prompt, final=9), 0, 8)
    again = seq_factory(1, prompt, final=9)
    assert st.cached_prefix_tokens(again, 8) == 4  # files sequence 0's run; capped below the prompt
    assert st.allocate(again, 4, 4)
    assert st.tables.seqs[0].run is None and st.tables.seqs[1].run is None
    assert st.pool.lookup(st.tables.seqs[1].chain.keys[1]) is st.tables.seqs[0].blocks[1]
    check(st)


def test_a_sequence_told_when_it_decodes_is_not_stopped_where_its_prompt_block_fills(strategy_factory, seq_factory):
    st = strategy_factory("paged_prefix", num_blocks=8, block_size=4)
    prompt = TokenSequence.synthetic("doc", 3)
    a = seq_factory(0, prompt, final=12, gen="reply")
    assert st.allocate(a, 0, 3)
    assert st.headroom(0) == 3  # asked alone, it stops where position 3 fills block 0
    assert st.start_decoding(0, 0) == 4  # told it writes position 3 in tick 1: room to its capacity
    quote = seq_factory(1, TokenSequence((*prompt.segments, Synthetic(("gen", "reply"), 5))), final=9)
    # Block 0 is not full before tick 1: the lookup files the run (nothing yet) and ends it, so from
    # then on sequence 0's blocks are registered as they fill, as a run-less sequence's are.
    assert st.cached_prefix_tokens(quote, 8) == 0
    assert st.tables.seqs[0].run is None
    decode_ticks(st, 1, 1)
    assert st.cached_prefix_tokens(quote, 8) == 4
    check(st)


def test_a_freed_run_is_dropped_when_its_last_block_is_taken(strategy_factory, seq_factory):
    st = strategy_factory("paged_prefix", num_blocks=4, block_size=4)
    assert st.allocate(seq_factory(0, 8, final=9), 0, 8)
    st.free(0, 8)
    assert [run.num_pending for run in st.index.runs.values()] == [2]  # its two blocks, cached
    assert st.allocate(seq_factory(1, 12, final=13), 0, 12)  # the 2 never used, then 0's tail
    assert st.block_table(1) == [2, 3, 1]
    st.free(1, 12)
    assert [run.num_pending for run in st.index.runs.values()] == [1, 3]  # 0's head; all of 1's
    assert st.allocate(seq_factory(2, 4, final=5), 0, 4)  # the least recently freed: 0's head
    # Sequence 0's run is gone; 1's (its blocks 2, 3, 1) and 2's (live, block 0) are left.
    assert [run.state.blocks[0].block_id for run in st.index.runs.values()] == [2, 0]
    assert st.pool.num_evicted_blocks == 2
    check(st)
