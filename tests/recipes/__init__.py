"""Tests of ``imgnet_tools.recipes``."""
