"""The records a process keeps: two generations, so a corpus past the limit keeps its hot candidates."""

from services.render.related.records import Record, Records


def _record(n: int) -> tuple[tuple[bytes, bytes, bytes], Record]:
    key = (str(n).encode(), f"a{n}".encode(), b"digest")
    return key, Record(f"a{n}", float(n), frozenset({n}), b"", 1.0)


def _batch(kept: Records, numbers) -> list[int]:
    """What a batch of queries does: trim, then meet its candidates; returns those read (not kept)."""
    kept.trim()
    read = []
    for n in numbers:
        key, record = _record(n)
        if kept.get(key) is None:
            kept.put(key, record)
            read.append(n)
    return read


def test_candidates_met_in_every_batch_are_read_once_however_many_others_pass_through():
    kept = Records(limit=10)
    reads = [n for batch in range(100) for n in _batch(kept, [0, 1, 2, 100 + 3 * batch, 101 + 3 * batch,
                                                               102 + 3 * batch])]
    assert [n for n in reads if n < 100] == [0, 1, 2]  # the hot ones, once (a fresh start past the limit re-read them)
    assert len(reads) == 3 + 300 and len(kept) <= 10 + 6


def test_a_trim_past_the_limit_keeps_what_queries_met_since_the_trim_before():
    kept = Records(limit=4)
    _batch(kept, [0, 1, 2, 3])
    _batch(kept, [])  # at the limit, not past it: nothing goes
    assert len(kept) == 4
    _batch(kept, [0, 1, 4])  # five kept: past the limit at the next trim
    _batch(kept, [0, 1, 5])  # the trim: all five become old; 0 and 1 met again, 5 read
    _batch(kept, [0, 1])  # the trim: {0, 1, 5} become old, {2, 3, 4} (not met since) go
    assert all(kept.get(_record(n)[0]) is None for n in (2, 3, 4))
    assert all(kept.get(_record(n)[0]) is not None for n in (0, 1, 5))
    assert len(kept) <= 4 + 3  # the limit and one batch's candidates at most


def test_a_record_not_met_for_two_trims_past_the_limit_is_read_again():
    kept = Records(limit=2)
    _batch(kept, [1, 2, 3])
    _batch(kept, [4])  # trim: {1, 2, 3} old
    _batch(kept, [4])  # trim: {4} old, {1, 2, 3} gone
    assert len(kept) == 1 and kept.get(_record(1)[0]) is None


def test_a_record_met_in_the_old_generation_moves_to_the_young_one():
    kept = Records(limit=2)
    key, record = _record(1)
    _batch(kept, [1, 2, 3])
    kept.trim()  # {1, 2, 3} old
    assert kept.get(key) is not None and len(kept) == 3  # moved, not copied
    kept.trim()  # {1} old, {2, 3} gone
    assert kept.get(key) is not None and kept.get(_record(2)[0]) is None
