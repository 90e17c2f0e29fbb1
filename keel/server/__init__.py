"""``keel serve``: the HTTP API with identities and roles (see ``app``)."""

from keel.server.app import create_app

__all__ = ["create_app"]
