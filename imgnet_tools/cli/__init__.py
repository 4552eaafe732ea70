"""The ``imgnet`` command line (click only). Each command group lives in its own module and is
imported only when that command runs, so ``imgnet --help`` loads no heavy dependency."""
