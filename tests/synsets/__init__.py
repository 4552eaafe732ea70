"""Tests of ``imgnet_tools.synsets``."""
