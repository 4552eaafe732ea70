"""Tests of ``imgnet_tools.votes``."""
