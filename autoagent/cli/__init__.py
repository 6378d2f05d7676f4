"""The edges a human touches: the typer app, the terminal renderer, the web console and its
pages."""
