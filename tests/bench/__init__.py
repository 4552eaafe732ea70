"""Tests of ``imgnet_tools.bench``."""
