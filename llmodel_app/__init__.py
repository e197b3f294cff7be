"""LLModel's front end: the Typer CLI and the Textual workbench."""
