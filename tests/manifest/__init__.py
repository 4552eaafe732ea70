"""Tests of ``imgnet_tools.manifest``."""
