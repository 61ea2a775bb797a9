"""Statistics with no I/O: paired tests, power, calibration and per-class metrics."""
