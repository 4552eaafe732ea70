"""imgnet test suite (mirrors the package)."""
