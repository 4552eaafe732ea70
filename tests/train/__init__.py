"""Tests of ``imgnet_tools.train``."""
