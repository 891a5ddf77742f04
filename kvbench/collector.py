"""Python's cyclic garbage collector, kept off what a run built before its loop.

A full collection walks every tracked object. During a run's loop that includes everything built
before it (the workload's requests and token sequences, the pool's blocks, the config), none of
which becomes garbage while the loop runs: on 10,000 ShareGPT requests three full passes walked it
for about a fifth of the whole process's CPU time. `gc.freeze` moves those objects out of the
collector's sight, and `gc.unfreeze` gives them back afterwards, so anything of theirs that does
become cyclic garbage is collected as usual once the loop is over. Reference counting, which frees
almost everything, is unaffected; results cannot change.

The `kvbench run` process also keeps the collector off during its start-up (imports, the Hydra
composition, building the run): about 130 passes over a growing heap cost about 0.13 s there, an
eighth of start-up, to find some 10,000 objects (1.5 MB) of cyclic garbage, which the first
collection after the loop frees instead.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# A loop keeps each request's objects for hundreds of steps, so every young collection walks them
# again: with the default 700, the 10,000-request `paged` loop spent about 0.11 CPU-s of 1.2 in
# 300 collections, with 10,000 about 0.08 in 20. The 30,000-request run's peak RSS did not change.
# (`runner.simulate` drops a recorded request's sequences, which refer to its state, so reference
# counting frees the request at once: no cyclic garbage is left for these passes to find.)
LOOP_GEN0_THRESHOLD = 10_000

_paused_for_start_up = False


def pause_for_start_up() -> None:
    """The collector off until `end_start_up` (the `kvbench run` process, before its imports)."""
    global _paused_for_start_up
    if gc.isenabled():
        gc.disable()
        _paused_for_start_up = True


def end_start_up() -> None:
    """After `pause_for_start_up`, once the run is built: what start-up made is frozen, as the loop
    would freeze it, and the collector runs again. (Turned on with all of it still young, its next
    pass would walk all of it.) Without a pause, nothing happens."""
    global _paused_for_start_up
    if _paused_for_start_up:
        gc.freeze()
        gc.enable()
        _paused_for_start_up = False


@contextmanager
def built_objects_frozen() -> Iterator[None]:
    """Within the block, the collector's passes skip every object that existed when it began, and
    its youngest generation is collected every `LOOP_GEN0_THRESHOLD` new objects rather than 700."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(LOOP_GEN0_THRESHOLD, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
