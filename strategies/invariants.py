"""One invariant checker for every strategy, run by the tests after every operation.

It rebuilds the pool's state from the block tables alone and compares it with what the strategy
reports: no block leaked or double-booked, reference counts equal table references, the free queue
holds exactly the unreferenced blocks (cached ones among them), no two sequences have written one
slot (sharing is for inherited tokens only), every prefix-cache key a live sequence holds matches
the content it re-derives for that block, and the memory breakdown recomputed block by block
equals the strategy's running totals and sums to the pool. With tiers below the pool
(strategies/tiers.py): every block kept below the pool is in exactly one tier (a block also
resident in the pool is a copy), and no tier holds more than its capacity. With a block table
per layer group: no block in two groups, and each group's held and token slots add up.
"""

from __future__ import annotations

from collections import Counter

from kvbench.strategies.base import KVCacheStrategy, PoolSnapshot, PoolUsage, SwappedKV
from kvbench.strategies.group_tables import NULL_BLOCK_ID


class InvariantError(AssertionError):
    pass


def _clamp(x: int, hi: int) -> int:
    return min(hi, max(0, x))


def _check_one_writer_per_slot(snap: PoolSnapshot) -> None:
    """No slot written by two sequences: a sequence writes its tokens past what it inherited."""
    bs = snap.block_size
    written: dict[int, list[tuple[int, int, int]]] = {}  # block -> (first slot, end slot, seq_id)
    for seq_id, table in snap.tables.items():
        first, end = snap.num_inherited_tokens[seq_id], snap.num_tokens[seq_id]
        for i in range(first // bs, min(len(table), -(-end // bs))):
            lo, hi = max(first, i * bs) - i * bs, min(end, (i + 1) * bs) - i * bs
            if lo < hi and table[i] != NULL_BLOCK_ID:
                written.setdefault(table[i], []).append((lo, hi, seq_id))
    for block_id, spans in written.items():
        spans.sort()
        for (_, hi, a), (lo, _, b) in zip(spans, spans[1:]):
            if lo < hi:
                raise InvariantError(f"block {block_id}: seqs {a} and {b} both wrote slot {lo}")


def _check_tiers(snap: PoolSnapshot) -> None:
    seen: dict[object, str] = {}
    for name, keys in snap.tiers.items():
        if len(keys) > snap.tier_capacity_blocks[name]:
            raise InvariantError(f"tier {name} holds {len(keys)} blocks, more than its {snap.tier_capacity_blocks[name]}")
        for key in keys:
            if key in seen:
                raise InvariantError(f"a block is in tiers {seen[key]} and {name}: demotion copied instead of moving")
            seen[key] = name


def _check_groups(snap: PoolSnapshot, usage: PoolUsage, filled: dict[int, int]) -> None:
    """Per layer group (tables keyed (seq_id, group)): no block is in two groups' tables, and each
    group's held and token slots recomputed from its tables equal what the strategy reports."""
    bs = snap.block_size
    group_of: dict[int, int] = {}
    for (seq_id, g), table in snap.tables.items():
        for block_id in table:
            if block_id != NULL_BLOCK_ID and group_of.setdefault(block_id, g) != g:
                raise InvariantError(f"block {block_id} is in the tables of groups {group_of[block_id]} and {g}")
    num_groups = len(usage.group_held_slots)
    held, token = [0] * num_groups, [0] * num_groups
    for block_id, g in group_of.items():
        held[g] += bs
        token[g] += filled[block_id]
    for name, expected in (("group_held_slots", held), ("group_token_slots", token)):
        if list(getattr(usage, name)) != expected:
            raise InvariantError(f"usage.{name} = {list(getattr(usage, name))}, recomputed {expected}")
    if sum(held) != usage.held_slots:
        raise InvariantError(f"the groups hold {sum(held)} slots, the pool {usage.held_slots}")


def check(strategy: KVCacheStrategy) -> None:
    """Raise InvariantError if the strategy's state is inconsistent. Call with every sequence synced."""
    snap = strategy.snapshot()
    bs = snap.block_size

    refs: Counter[int] = Counter()
    for seq_id, table in snap.tables.items():
        refs.update(b for b in table if b != NULL_BLOCK_ID)
        refs.update(snap.extra_held.get(seq_id, []))
        if len(table) * bs < snap.num_tokens[seq_id]:
            raise InvariantError(f"seq {seq_id}: {snap.num_tokens[seq_id]} tokens in {len(table)} blocks")
    for block_id in range(snap.num_blocks):
        if snap.ref_cnt[block_id] != refs.get(block_id, 0):
            raise InvariantError(
                f"block {block_id}: ref_cnt {snap.ref_cnt[block_id]} but {refs.get(block_id, 0)} references"
            )

    queue = snap.free_queue
    if len(set(queue)) != len(queue):
        raise InvariantError(f"free queue has duplicates: {queue}")
    unreferenced = {b for b in range(snap.num_blocks) if snap.ref_cnt[b] == 0}
    if set(queue) != unreferenced:
        raise InvariantError(
            f"free queue {sorted(queue)} != unreferenced blocks {sorted(unreferenced)}"
        )
    if not snap.cached <= unreferenced or not snap.cached <= snap.registered:
        raise InvariantError(f"cached blocks {sorted(snap.cached - unreferenced)} are not free")
    _check_one_writer_per_slot(snap)
    if snap.tiers:
        _check_tiers(snap)
    for block_id, key, derived in snap.cache_key_checks:
        if key != derived:
            raise InvariantError(
                f"block {block_id} is cached under a key that does not match its content: a request "
                f"would hit another request's K/V"
            )

    # Per physical block: tokens = the most any holder that writes there has written, reservation
    # end = the furthest such a holder will write. A holder does not write the blocks it inherited
    # (a prefix hit, a fork): while their writer holds them, the writer's progress counts (it may be
    # computing them in this very step); once the writer has left, the inherited tokens are there.
    filled: dict[int, int] = {}
    reserve_end: dict[int, int] = {}
    inherited: dict[int, int] = {}  # block -> inherited tokens in it, for blocks whose writer left
    for seq_id, table in snap.tables.items():
        num_inherited = snap.num_inherited_tokens[seq_id]
        for i, block_id in enumerate(table):
            if block_id == NULL_BLOCK_ID:  # released out of a sliding window: holds nothing
                continue
            filled.setdefault(block_id, 0)
            reserve_end.setdefault(block_id, 0)
            if i >= num_inherited // bs:
                filled[block_id] = max(filled[block_id], _clamp(snap.num_tokens[seq_id] - i * bs, bs))
                reserve_end[block_id] = max(reserve_end[block_id], _clamp(snap.final_num_kv_tokens[seq_id] - i * bs, bs))
            else:
                inherited[block_id] = max(inherited.get(block_id, 0), _clamp(num_inherited - i * bs, bs))
        for block_id in snap.extra_held.get(seq_id, []):
            filled.setdefault(block_id, 0)
            reserve_end.setdefault(block_id, 0)
    writers = {
        block_id
        for seq_id, table in snap.tables.items()
        for block_id in table[snap.num_inherited_tokens[seq_id] // bs :]
    }
    writers.discard(NULL_BLOCK_ID)
    for block_id in inherited.keys() - writers:
        filled[block_id] = reserve_end[block_id] = inherited[block_id]
    token = sum(filled.values())
    reserved = sum(max(reserve_end[b], filled[b]) - filled[b] for b in filled)
    held = len(filled) * bs
    logical = sum(
        len(t) - t.count(NULL_BLOCK_ID) + len(snap.extra_held.get(s, [])) for s, t in snap.tables.items()
    ) * bs
    expected = {
        "token_slots": token,
        "reserved_slots": reserved,
        "internal_frag_slots": held - token - reserved,
        "cached_slots": len(snap.cached) * bs,
        "free_slots": (len(unreferenced) - len(snap.cached)) * bs,
        "logical_slots": logical,
    }
    usage = strategy.usage()
    for name, value in expected.items():
        if getattr(usage, name) != value:
            raise InvariantError(f"usage.{name} = {getattr(usage, name)}, recomputed {value}")
    if usage.group_held_slots:
        _check_groups(snap, usage, filled)
    total = (
        usage.token_slots + usage.reserved_slots + usage.internal_frag_slots
        + usage.external_frag_slots + usage.free_slots + usage.cached_slots
    )
    if total != usage.pool_slots:
        raise InvariantError(f"breakdown sums to {total} slots, pool has {usage.pool_slots}")


def check_swap(
    strategy: KVCacheStrategy, swapped: list[tuple[SwappedKV, list[int]]], num_host_blocks: int,
    free_host_ids: list[int],
) -> None:
    """Swap preemption's invariants: every block is in exactly one place, or counted as a copy.

    `swapped`: each swapped-out request's K/V and its host block ids (host_ids[i] holds the copy of
    kv.src_block_ids[i]); `free_host_ids`: the swap space's free blocks. A swapped sequence is in
    the swap space and not in the pool, every host block is held by one request or free, a request
    holds one host block per distinct block it swapped (blocks its sequences shared count once),
    and each swapped table covers exactly its tokens. A swapped block whose pool block is still
    held (by a sequence outside the request) is a copy: it was counted in `num_blocks`, and the
    pool's own check above accounts for the original.
    """
    snap = strategy.snapshot()
    bs = snap.block_size
    held: list[int] = []
    seen_seqs: set[int] = set()
    for kv, host_ids in swapped:
        if len(host_ids) != kv.num_blocks or len(set(kv.src_block_ids)) != kv.num_blocks:
            raise InvariantError(f"{kv.num_blocks} swapped blocks ({kv.src_block_ids}) in host blocks {host_ids}")
        if len(kv.block_fills) != kv.num_blocks:
            raise InvariantError(f"{len(kv.block_fills)} block fills for {kv.num_blocks} swapped blocks")
        held += host_ids
        used: set[int] = set()
        for seq_id, seq in kv.seqs.items():
            if seq_id in snap.tables:
                raise InvariantError(f"seq {seq_id} is both in the pool and in the swap space")
            if seq_id in seen_seqs:
                raise InvariantError(f"seq {seq_id} is swapped out twice")
            seen_seqs.add(seq_id)
            if -(-seq.num_tokens // bs) != len(seq.block_indices):
                raise InvariantError(
                    f"swapped seq {seq_id}: {seq.num_tokens} tokens in {len(seq.block_indices)} blocks"
                )
            for i, index in enumerate(seq.block_indices):
                num_tokens, reserve_end = kv.block_fills[index]
                if not 0 <= num_tokens <= bs or num_tokens < min(bs, seq.num_tokens - i * bs):
                    raise InvariantError(f"swapped seq {seq_id}: block {i} holds {num_tokens} of its tokens")
            used.update(seq.block_indices)
        if used != set(range(kv.num_blocks)):
            raise InvariantError(f"swapped blocks {sorted(set(range(kv.num_blocks)) - used)} belong to no sequence")
    everything = held + list(free_host_ids)
    if len(set(everything)) != len(everything) or set(everything) != set(range(num_host_blocks)):
        raise InvariantError(
            f"host blocks held {sorted(held)} and free {sorted(free_host_ids)} do not partition {num_host_blocks} blocks"
        )
