"""Bounds on what a full (generation 2) cyclic-GC collection walks while the scorer serves.

Once the scorer's tables are recovered, everything start-up made is frozen (``gc.freeze``:
:mod:`.quick_start`, ``create_app``), state lives on disk as bytes and nothing decoded is
kept between batches (:mod:`.entities`). A full collection then walks the objects made
since and still alive, and follows every reference they hold, tracked or not (a list of a
million untracked tuples is one object and a million visits). Counted in a running scorer
(``gc.get_objects`` at each full collection, 300,000 events over as many entities, 4
partitions, producers ahead of the scorer), nothing of it grew with the entities; two
things grew with other things:

- **Parsed records of a backlog.** faust asked its worker consumer for everything fetched
  (``broker_max_poll_records`` unset), and aiokafka parsed a whole partition fetch
  (``consumer_max_fetch_size``, 1 MiB: about 5,300 quickstart events) into
  ``ConsumerRecord`` objects at once, which faust held while it fed them to the agents one
  by one: with four partitions behind, 21,000-30,000 objects (12 references each) in every
  full collection, 16-43 ms of CPU each. :data:`POLL_RECORDS` bounds a poll; the rest of a
  fetch waits in aiokafka's buffer as bytes, parsed a poll at a time, and
  :data:`FETCH_BYTES` keeps the partitions' turns short. Since: at most about 14,500
  objects walked, 8 ms of CPU (faust's queued events, the batch, one poll).
- **The expiry index**, one entry per pending prediction up to ``state.max_pending``
  (2,000,000): heaps of ``(time, key)`` tuples were lists walked item by item (50 ms of CPU
  a collection at 1,000,000 entries). It is kept in flat arrays now (:mod:`.expiry`).

``streambed_gc_walked_objects_max`` (:mod:`.gc_watch`) exports the largest walk.
"""

from __future__ import annotations

#: Records one poll of the worker consumer parses into Python objects (faust's
#: ``broker_max_poll_records``): one batch's worth (the batch takes at most 1,000).
POLL_RECORDS = 1_000
#: Bytes fetched per partition per fetch (faust's ``consumer_max_fetch_size``, 1 MiB by
#: default; a record larger than this still comes, alone). aiokafka hands a bounded poll
#: the buffered fetches one partition after another: with 1 MiB each, a partition behind
#: others waited for three fetches of theirs (16,000 records, over 10 s at the scorer's
#: pace) and looked idle to the tail check (``IDLE_SECONDS``); the run counted 307,148
#: outcomes for 300,000 events (300,000 exactly before the bound and with short turns;
#: the tail check's read-back is the likely second reader, not confirmed; it now counts
#: only records below the consumer's position as skipped, and a partition waiting its
#: turn has none). 64 KiB (about 330 quickstart events) keeps the turns short.
FETCH_BYTES = 64 * 1024
