"""What a task is: its registration, payload schema and validation, priority and retry policy."""
