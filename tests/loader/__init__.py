"""Tests of ``imgnet_tools.loader``."""
