"""Object detection (:mod:`.task`)."""
