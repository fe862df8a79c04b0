"""The deployment engine: runs a program against state and records what changed."""
