"""Tests of ``imgnet_tools.dedup``."""
