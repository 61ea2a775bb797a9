"""`python -m devtools.ports VARIABLE PORT [PORT ...]`: exit 2 naming the first taken port on
127.0.0.1 and the variable that moves it (make demo, make view), before anything starts."""

from __future__ import annotations

import sys

from model_server.ports import busy_message, in_use


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m devtools.ports VARIABLE PORT [PORT ...]", file=sys.stderr)
        return 2
    variable, ports = argv[0], [int(p) for p in argv[1:]]
    for port in ports:
        if in_use("127.0.0.1", port):
            what = f"ports {ports[0]}-{ports[-1]}" if len(ports) > 1 else f"port {ports[0]}"
            print("error: " + busy_message("127.0.0.1", port, f"set {variable} to move {what}, e.g. "
                                           f"{variable}={ports[0] + 100} make ..."), file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
