"""Read-side views for the NOC and the firmware team: pure queries over the telemetry
store and the registry (active accounts only), aggregated in SQL."""
