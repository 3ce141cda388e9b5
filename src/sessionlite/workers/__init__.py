"""Background work owned by the service's task group: persistence, cleanup, summaries."""
