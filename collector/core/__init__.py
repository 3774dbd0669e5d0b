"""The core vocabulary every room of hookflash speaks: records, interfaces, errors.

Nothing here imports another part of `collector`; every stage imports from here.
- `records`: what flows through the pipeline (Observation, TelemetryRecord, QuarantineEntry).
- `interfaces`: Source, Sink, the intake a source hands items to, and what it may ask.
- `errors`: one exception root, HookflashError, and the few subclasses that carry data.
- `backoff`: the one capped exponential backoff every retry loop uses.
- `stats`: the counters the runtime keeps and /metrics shows.
"""
