"""Tests of ``imgnet_tools.demo``."""
