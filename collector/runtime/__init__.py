"""The runtime: what runs the pipeline and holds the rooms together.

- `service`: the wiring (sinks, pipeline and intake, sources, the read side), start and stop.
- `plugins`: the sources, registered in one place.
- `intake`: the one place every source hands its items to; the fault boundary.
- `pipeline`: the backlog and the writer thread, with the last-moment gate.
- `context`: what a source may ask the runtime.
- `lifecycle`, `deactivation`, `sweeper`, `export`: registry events, deactivation requests,
  retention, and the privacy export.
- `spooled`, `spool`: the disk spool and worker in front of each remote sink.
- `observability`, `metrics`: the read side (views, alerts, /metrics) of a running service.
"""
