"""The `recorder` command line."""
