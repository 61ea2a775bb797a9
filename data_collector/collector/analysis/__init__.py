"""What stored answers mean: selectors, per-class reports, comparisons, suspects, latency and robustness."""
