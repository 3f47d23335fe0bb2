"""Trackers: plugins that implement only the lifecycle hooks (they train nothing)."""
