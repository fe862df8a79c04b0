"""One module per family of CLI commands; each function takes the parsed argv."""
