"""`python -m collector.cli ...` == `data-collector ...`."""

from . import entry

entry()
