"""The imperative shell, one subpackage per role.

- :mod:`streams.scorer`: the scorer (a Faust worker; ``streambed worker``)
- :mod:`streams.replay`: history into point-in-time training sets (``streambed replay``)
- :mod:`streams.devtools`: the local broker, the simulator, the demo

Shared by all of them: :mod:`.config` (the YAML config), :mod:`.records` (wire records),
:mod:`.validation` (raw events), :mod:`.topics` (topic administration), :mod:`.cli`.
"""
