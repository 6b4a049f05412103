"""Full-link gray release: lanes tag requests, the tag travels, outbound calls follow it.

* `rule`: lanes (conditions that give a request a tag) and services (instances per tag), parsed
  from governance.yaml's `lanes:` and `services:` sections into precomputed tables.
* `context`: the request's tag (a ContextVar: threads, asyncio tasks and gRPC handlers each
  see their own) and the headers that carry it between services.
* `router`: which instance an outbound call to a named service goes to.
* `stats`: per-lane counters for the metrics endpoint.
"""
