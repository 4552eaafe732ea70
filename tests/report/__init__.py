"""Tests of ``imgnet_tools.report``."""
