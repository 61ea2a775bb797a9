"""Talking to model servers: one parse of a model URL (`urls`), the bounded HTTP client and this
project's native protocol (`client`), OIP v2 and TF Serving / KServe v1 (`foreign`), and the typed
answers every server's text is parsed into (`answers`, checked by `validate`).

`connect` is the one entry: a model URL (text, parsed here once, or a parsed `urls.ModelURL`) to
the client that speaks its protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .options import ProtocolOptions, read_labels_file  # noqa: F401 - the entry's options, named here

if TYPE_CHECKING:
    from .client import ModelClient
    from .urls import ModelURL


def connect(url: str | ModelURL, options: ProtocolOptions | None = None, **kwargs) -> ModelClient:
    """The client for a model URL's protocol (kwargs as ModelClient's: limits, retries, ...).
    A text is parsed here, once (`urls.parse_model_url`); a parsed URL is used as it is."""
    options = options or ProtocolOptions()
    from .client import ModelClient, ModelServerError, display_url
    from .urls import BadURL, ModelURL, parse_model_url

    if not isinstance(url, ModelURL):
        try:
            url = parse_model_url(url, options.protocol)
        except BadURL as e:
            raise ModelServerError(display_url(url), str(e)) from None
    if url.protocol == "native":
        return ModelClient(url, **kwargs)
    from .foreign import OIPClient, V1Client  # numpy and the OIP codec: only for other serving stacks

    return (OIPClient if url.protocol == "v2" else V1Client)(url, options, **kwargs)
