"""The web face of the warehouse (`chaffee serve`): a search page, a JSON API and answers with citations."""

from chaffee_assets.web.app import create_app

__all__ = ["create_app"]
