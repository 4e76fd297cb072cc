"""Headless command-line interface (argparse; one module per command group)."""
