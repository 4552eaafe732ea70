"""Tests of ``imgnet_tools.execute``."""
