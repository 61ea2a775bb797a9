"""WSGI entry for gunicorn: `gunicorn model_server.wsgi:app` (model folder from MODEL_DIR)."""

from .app import create_app

app = create_app()
