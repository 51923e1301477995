"""Subcommands of the `retention` command."""
