# -*- coding: utf-8 -*-
# Copyright: entraops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Removal chunk sizes: small first and after a failure, larger while chunks go clean (pure logic)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.entraops.licensing.plugins.module_utils.removal import (
    MAX_ROWS_PER_CHUNK,
    ROWS_PER_CHUNK,
    ChunkSizer,
    _chunks_one_row_per_user,
)


def rows_for(users, skus=1):
    return [{"user_id": "u%04d" % user, "sku_id": "s%d" % sku} for sku in range(skus) for user in range(users)]


def test_sizes_grow_while_clean_and_fall_back_after_a_failure():
    sizer = ChunkSizer()
    sizes = []
    for clean in (True, True, True, True, False, True):
        sizes.append(sizer.next_size())
        sizer.after_chunk(clean)
    assert sizes == [ROWS_PER_CHUNK, 2 * ROWS_PER_CHUNK, 4 * ROWS_PER_CHUNK, MAX_ROWS_PER_CHUNK, MAX_ROWS_PER_CHUNK, ROWS_PER_CHUNK]


def test_adaptive_chunks_cover_every_row_once_and_never_hold_a_user_twice():
    sizer = ChunkSizer()
    rows = rows_for(300, skus=2)
    chunks = []
    for chunk in _chunks_one_row_per_user(rows, sizer.next_size):
        chunks.append(chunk)
        sizer.after_chunk(clean=len(chunks) != 3)
    assert sorted((row["user_id"], row["sku_id"]) for chunk in chunks for row in chunk) == sorted((row["user_id"], row["sku_id"]) for row in rows)
    assert all(len(set(row["user_id"] for row in chunk)) == len(chunk) for chunk in chunks)
    assert [len(chunk) for chunk in chunks[:5]] == [10, 20, 40, 10, 20]
    assert max(len(chunk) for chunk in chunks) == MAX_ROWS_PER_CHUNK


def test_a_fixed_size_still_works():
    assert [len(chunk) for chunk in _chunks_one_row_per_user(rows_for(25), 10)] == [10, 10, 5]


def test_pacer_banks_a_chunk_of_writes_during_reads():
    from ansible_collections.entraops.licensing.plugins.module_utils.graph import WritePacer

    class Clock:
        now = 0.0
        sleeps = []

        def __call__(self):
            return self.now

        def sleep(self, seconds):
            self.sleeps.append(seconds)
            self.now += seconds

    clock = Clock()
    pacer = WritePacer(20, clock=clock, sleep=clock.sleep)
    pacer.ensure_burst(MAX_ROWS_PER_CHUNK)
    assert pacer.acquire(MAX_ROWS_PER_CHUNK) == 1.5  # one second's worth was in the bucket
    clock.now += 2.5  # a read phase of 2.5 s earns 50 writes at 20/s, none lost
    assert pacer.acquire(MAX_ROWS_PER_CHUNK) == 0
    assert pacer.acquire(20) == 1.0  # then the rate applies again
    pacer.ensure_burst(5)  # never shrinks
    assert pacer.capacity == MAX_ROWS_PER_CHUNK
