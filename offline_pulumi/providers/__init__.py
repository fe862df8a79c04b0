"""Built-in resource providers of the offline engine (pure Python, no plugins)."""
