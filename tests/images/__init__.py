"""Tests of ``imgnet_tools.images``."""
