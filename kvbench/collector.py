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
    """Within the block, the collector's passes skip every object that existed when it began."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
