"""The scorer role: events → validate → features → score with the champion → ``scored``.

:mod:`.app` wires the Faust shell (topics, tables, agents, timers, web views) from small
parts tested without a broker: :mod:`.batching` (when a batch is done), :mod:`.readback`
and :mod:`.gaps` (records the stream consumer skipped), :mod:`.runner` and
:mod:`.publisher` (one batch at a time, published in ordered steps), :mod:`.observe` (metrics
and monitors), :mod:`.timers`, :mod:`.views`, and :mod:`.champion` (the champion and the
candidates in shadow). :mod:`.processor` holds what happens to a batch apart from Kafka:
:mod:`.events`, :mod:`.labels` and :mod:`.expiry` over the tables of :mod:`.tables`
(values encoded by :mod:`.state`; :mod:`.entities`, :mod:`.positions`).
"""
