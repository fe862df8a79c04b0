"""Burner stack orchestration: settings, engine choice, program virtualenv and the pipeline."""
