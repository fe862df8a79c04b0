"""The ${PROJECT} program (generated from the minimal test template)."""
