"""Tests of ``imgnet_tools.evaluate``."""
