"""Is a TCP port free to listen on? Asked before a server starts, so a taken port is one line
naming the flag or variable that moves it, not gunicorn's retries ("Connection in use", five
times, then "Can't connect")."""

from __future__ import annotations

import socket


def in_use(host: str, port: int) -> bool:
    """True when something listens on (host, port), or the address cannot be bound at all.

    SO_REUSEADDR as gunicorn sets it: a port left in TIME_WAIT by a stopped server is free."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def busy_message(host: str, port: int, how_to_move: str) -> str:
    """The one line a server prints when its port is taken."""
    return (f"port {port} on {host} is already in use (another server, or an earlier run still going): "
            f"{how_to_move}")
