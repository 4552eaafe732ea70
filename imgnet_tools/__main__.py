"""``python -m imgnet_tools`` runs the ``imgnet`` command line."""

from imgnet_tools.cli.main import cli

if __name__ == "__main__":  # pragma: no cover - exercised through a subprocess test
    cli(prog_name="imgnet")
