"""Tests of ``imgnet_tools.collect``."""
