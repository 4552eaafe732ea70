"""Tests of ``imgnet_tools.cli``."""
