"""Tests of ``imgnet_tools.shards``."""
