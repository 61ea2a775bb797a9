"""Seed entry: `python data_collector.py URL [URL ...]` == `data-collector collect URL [URL ...]`."""

import sys

from collector.cli import entry

if __name__ == "__main__":
    entry(["collect", *sys.argv[1:]], prog_name="data_collector.py")
