"""HTTP API: deactivation hooks for billing/CRM systems (and, later, fleet views)."""
