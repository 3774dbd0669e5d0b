"""HTTP API: deactivation hooks for billing/CRM systems, the NOC's fleet views, /metrics
and the dashboard. It knows the running service only through `ports`."""

from collector.api.app import create_app

__all__ = ["create_app"]
