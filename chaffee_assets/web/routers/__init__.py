"""One router per concern: the page, the JSON API, health."""
