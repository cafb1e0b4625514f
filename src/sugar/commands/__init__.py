"""CLI subcommands, one module per area; each exposes `register(app)`. Kept thin: they parse arguments
and call library functions."""
