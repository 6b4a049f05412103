"""State shared by the worker processes of one instance (a pre-fork server on one host).

`segment` maps one shared-memory file per instance and guards it with a process-shared lock;
`instance` decides which instance a process belongs to. Built on it: the resource counters
(stat/shared.py, with their per-call path in `path`), all inbound traffic (`inbound`), and the
rule state of stateful checks (`state`: warm-up, throttling, circuit breakers).
"""
