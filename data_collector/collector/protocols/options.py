"""What the collector is told about models that do not describe themselves fully (`--protocol`,
`--labels-file`, `--output`, `--input-mode`, ...)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProtocolOptions:
    """What the collector is told about models that do not describe themselves fully."""

    protocol: str | None = None  # None: detect from the address
    labels: tuple[str, ...] | None = None  # for servers that publish none, in output order
    output: str | None = None  # the scores output, when a model has several
    input_mode: str | None = None  # bytes (encoded images) or tensor (FP32 [N,H,W,3]); None: from metadata
    preprocessing: dict | None = None  # for tensor mode, when the server publishes none
    binary: bool = True  # use OIP's binary tensor extension when the server lists it


def read_labels_file(text: str) -> tuple[str, ...]:
    """One label per line, in output order (Triton's label-file format); blank lines ignored."""
    labels = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not labels:
        raise ValueError("the labels file holds no label")
    return labels
