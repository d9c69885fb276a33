"""Fetch sizes for the learner's kafka-python consumers, consistent with the message limit.

kafka-python refuses a response frame larger than ``receive_message_max_bytes`` (default
1,000,000) with ``InvalidReceiveError: Invalid frame length``, while it asks the broker for
up to ``max_partition_fetch_bytes`` (default 1 MiB) per partition: a full fetch of 1 MiB of
records plus the response's headers (1,048,646 bytes, seen in the learner's log) is over
the limit. The consumer recovers, but only after a reconnect, and a single record larger
than the partition fetch size is never read at all.

So: a partition fetch holds at least one record of ``topics.max_message_bytes``; a fetch
holds a few partitions' worth; and the frame limit is the fetch size plus room for headers.

>>> opts = fetch_options(1_048_588)
>>> opts["max_partition_fetch_bytes"] >= 1_048_588
True
>>> opts["receive_message_max_bytes"] > opts["fetch_max_bytes"] >= opts["max_partition_fetch_bytes"]
True
"""

from __future__ import annotations

#: Headroom for the fetch response's own headers (topic names, partition headers, ...).
HEADER_ROOM_BYTES = 1 << 20
#: Partitions' worth of data in one fetch (the training log has one partition).
PARTITIONS_PER_FETCH = 4


def fetch_options(max_message_bytes: int) -> dict[str, int]:
    """kafka-python consumer options for a topic whose records reach ``max_message_bytes``."""
    partition = max(max_message_bytes, 1 << 20)
    fetch = partition * PARTITIONS_PER_FETCH
    return {"max_partition_fetch_bytes": partition, "fetch_max_bytes": fetch,
            "receive_message_max_bytes": fetch + HEADER_ROOM_BYTES}
