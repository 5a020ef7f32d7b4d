"""The engine: scheduling rows, dispatching them, running attempts on workers, recording outcomes,
recovering lost work, and the Redis transport and keys it coordinates through."""
