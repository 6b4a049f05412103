"""State shared by the worker processes of one instance (a pre-fork server on one host).

`segment` maps one shared-memory file per instance and guards it with a process-shared lock;
`instance` decides which instance a process belongs to. The statistics built on it live in
stat/shared.py.
"""
