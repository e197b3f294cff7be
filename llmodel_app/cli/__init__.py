"""Headless subcommands; each one is a typed function that calls the engine library."""
