"""First-fit and buddy allocators over a linear block address space: exact addresses."""

import pytest

from kvbench.strategies.allocators import BuddyAllocator, FirstFitAllocator, next_pow2


@pytest.mark.parametrize(("n", "expected"), [(1, 1), (2, 2), (3, 4), (5, 8), (16, 16), (17, 32)])
def test_next_pow2(n, expected):
    assert next_pow2(n) == expected


def test_first_fit_takes_the_first_hole_large_enough_and_coalesces():
    a = FirstFitAllocator(10)
    assert [a.allocate(3), a.allocate(3), a.allocate(3)] == [0, 3, 6]
    a.free(3, 3)
    assert a.holes() == [(3, 3), (9, 1)]
    assert a.allocate(4) is None  # 4 free blocks, but no run of 4
    assert a.unusable_free_blocks(4) == 4
    assert a.allocate(2) == 3
    a.free(0, 3)
    a.free(6, 3)
    assert a.holes() == [(0, 3), (5, 5)]  # 5-8 merged with the trailing 9
    a.free(3, 2)
    assert a.holes() == [(0, 10)] and a.num_free_blocks == 10


def test_buddy_rounds_up_splits_low_and_merges_buddies():
    a = BuddyAllocator(16)
    assert a.run_size(3) == 4
    assert a.allocate(3) == 0  # 16 -> 8 + 8 -> 4 + 4: takes [0, 4)
    assert a.allocate(5) == 8  # the free 8 at 8
    assert a.allocate(2) == 4  # splits [4, 8) into 2 + 2
    assert a.holes() == [(6, 2)] and a.num_free_blocks == 2
    assert a.allocate(4) is None
    a.free(0, 3)
    assert a.holes() == [(0, 4), (6, 2)]
    a.free(4, 2)  # [4,6) + [6,8) -> [4,8), then + [0,4) -> [0,8)
    assert a.holes() == [(0, 8)]
    a.free(8, 5)
    assert a.holes() == [(0, 16)] and a.num_free_blocks == 16


def test_buddy_over_a_pool_that_is_not_a_power_of_two_never_merges_across_regions():
    a = BuddyAllocator(12)  # regions [0, 8) and [8, 12)
    assert a.largest_run() == 8
    assert a.allocate(4) == 8  # the smallest block that fits: the 4-region
    assert a.allocate(8) == 0
    assert a.allocate(1) is None
    a.free(0, 8)
    a.free(8, 4)
    assert a.holes() == [(0, 8), (8, 4)]
