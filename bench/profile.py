"""Where the time goes: py-spy samples of the collector and of a server worker during one run.

    python -m bench.profile [--images 1000]      (needs py-spy: pip install py-spy)

Prints the top functions by own samples (and by inclusive samples) for each process.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import augmented_testset, children, servers


def top(raw: Path, n: int = 10) -> tuple[list, list]:
    own, incl = collections.Counter(), collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        c = int(count)
        total += c
        frames = [f.split(" (")[0] for f in stack.split(";")]
        own[frames[-1]] += c
        for f in set(frames):
            incl[f] += c
    share = lambda cnt: [(f, v / total) for f, v in cnt.most_common(n)]  # noqa: E731
    return share(own), share(incl)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    args = ap.parse_args(argv)
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if not spy:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = augmented_testset(tmp / "td", args.images)
        with servers(["ml_original"]) as (url,):
            import os
            master = next(p for p in children(os.getpid()))
            worker = children(master)[0]
            srv = subprocess.Popen([spy, "record", "--pid", str(worker), "--format", "raw", "--rate", "200",
                                    "--nonblocking", "-o", str(tmp / "server.txt")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
            exe = str(Path(sys.executable).parent / "data-collector")
            subprocess.run([spy, "record", "--format", "raw", "--rate", "200", "--nonblocking", "--subprocesses",
                            "-o", str(tmp / "collector.txt"), "--", exe, "--db", f"sqlite:///{tmp}/p.db", "collect",
                            "--test-data", str(data), url], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            srv.send_signal(2)
            srv.wait(30)
        for name in ("collector", "server"):
            own, incl = top(tmp / f"{name}.txt")
            print(f"== {name}: top functions by own samples")
            for f, s in own:
                print(f"  {s:6.1%}  {f}")
            print(f"== {name}: top functions including callees")
            for f, s in incl:
                print(f"  {s:6.1%}  {f}")


if __name__ == "__main__":
    main()
