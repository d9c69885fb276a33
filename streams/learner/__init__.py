"""The learner role: the training log → versions with lineage → gates → the champion.

:mod:`.runner` is the loop (one active learner, standbys through the consumer group),
:mod:`.snapshots` its state on Kafka, :mod:`.web` its ``/metrics``, ``/health`` and
``/ready``, :mod:`.commands` the people's side (``streambed model ...``). The rules
themselves (learning, evaluation, gates, decisions) are the pure :mod:`governance` core.
"""
