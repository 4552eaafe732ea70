"""Side-by-side benchmarks: each ``bench_*.py`` module times imgnet against a peer in one run."""
