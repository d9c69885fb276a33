"""Bounds on what a full (generation 2) cyclic-GC collection walks while the scorer serves.

Once the scorer's tables are recovered, everything start-up made is frozen (``gc.freeze``:
:mod:`.quick_start`, ``create_app``), state lives on disk as bytes and nothing decoded is
kept between batches (:mod:`.entities`). What a full collection then walks is what is in
flight, and it does not grow with the entities: counted in a running scorer
(``gc.get_objects``, 100,000 events over 100,000 entities, 4 partitions), 11,500 tracked
objects outside the frozen generation at 10,000 events, 27,800 at 50,000 while the
producer ran ahead of the scorer, 1,300-2,800 once it had caught up.

What grew with the backlog was aiokafka's parsed records: faust asks its worker consumer
for everything fetched (``broker_max_poll_records`` unset), and aiokafka parses a whole
partition fetch (``consumer_max_fetch_size``, 1 MiB: about 5,300 quickstart events) into
``ConsumerRecord`` objects at once, which faust then holds while it feeds them to the
agents one by one. Four partitions behind made 21,000 of them (12 references each), about
three quarters of what a full collection walked, whatever the number of entities.
:data:`POLL_RECORDS` bounds a poll: the rest of a fetch waits in aiokafka's buffer as
bytes (parsed lazily, a poll at a time), which the collector does not walk.
"""

from __future__ import annotations

#: Records one poll of the worker consumer parses into Python objects (faust's
#: ``broker_max_poll_records``): one batch's worth (the batch takes at most 1,000).
POLL_RECORDS = 1_000
