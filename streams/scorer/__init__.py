"""The scorer role: events → validate → features → score with the champion → ``scored``.

:mod:`.app` is the Faust shell (topics, tables, agents, timers, web views);
:mod:`.processor` holds what happens to one record, apart from Kafka; :mod:`.gaps` reads
back records the stream consumer skipped.
"""
