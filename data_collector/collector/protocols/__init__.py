"""Talking to model servers: one parse of a model URL, the bounded HTTP client, this project's
native protocol, OIP v2 and TF Serving / KServe v1, and the typed answers every server's text is parsed into."""
