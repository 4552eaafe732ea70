"""``python -m imgnet_tools`` runs the ``imgnet`` command line."""

from imgnet_tools.cli.main import main

if __name__ == "__main__":  # pragma: no cover - exercised through a subprocess test
    main()
