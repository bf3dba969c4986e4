"""How an error becomes text a person reads: one line, with no password or key in it.

Connection strings and proxy URLs reach error messages in every form libpq and HTTP clients accept,
so secrets are hidden by their shape, wherever they sit in the text:
`scheme://user:PASSWORD@host` (with or without the scheme), `password=PASSWORD` (a keyword DSN, quoted or not),
`?password=PASSWORD` / `&sslpassword=…` (URL query parameters), `?key=…` (Google API keys in a URL),
and `sk-…` (OpenAI keys). A secret of another shape (a key from another provider, echoed back in an
upstream error) is hidden by its value once the process has registered it with `register_secret`.
"""

from __future__ import annotations

import base64
import re
import threading
from urllib.parse import unquote, urlsplit

MASK = "***"
# Secrets shorter than this are not hidden by value: "abc" would mask ordinary words.
_MIN_SECRET_CHARS = 6
_known_secrets: set[str] = set()
_known_lock = threading.Lock()

# Every pattern starts only where its first character cannot continue a longer run, and a password
# is at most 256 characters: a long hostile text (a URL of 40 KB in an access log line) is scanned in
# linear time, never rescanned from each position.
_URL_PASSWORD = re.compile(
    r"(?<![a-zA-Z0-9+.-])(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)(?P<secret>\S{0,256})(?=@)"
)
# `user:password@host` without a scheme: what libpq quotes back from a malformed URL.
_USERINFO_PASSWORD = re.compile(r"(?<![\w.%+-])(?P<head>[\w.%+-]+:)(?P<secret>[^\s@\"'/:]+)(?=@[\w\[])")
_KEYWORD_PASSWORD = re.compile(
    r"(?P<head>\b(?:password|sslpassword)\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'?|[^\s&#'\"]+)", re.IGNORECASE
)
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&](?:key|api_key|apikey|access_token|token|secret)=)(?P<secret>[^&\s#'\"]+)", re.IGNORECASE
)
_OPENAI_KEY = re.compile(r"(?<![A-Za-z0-9_-])sk-(?:proj-)?[A-Za-z0-9_-]{6,}")


def register_secret(value: str | None) -> None:
    """Hide `value` wherever it appears from now on (an API key, a password); short values are ignored."""
    if value and len(value) >= _MIN_SECRET_CHARS:
        with _known_lock:
            _known_secrets.add(value)


def register_url_secrets(url: str | None) -> None:
    """Register the password in a URL's `user:password@` part, as written and percent-decoded."""
    if not url:
        return
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return
    if password:
        register_secret(password)
        register_secret(unquote(password))
        # HTTP clients send URL credentials as Basic auth, which an upstream may quote back.
        userinfo = f"{unquote(parts.username or '')}:{unquote(password)}"
        register_secret(base64.b64encode(userinfo.encode()).decode())


def redact(text: str) -> str:
    """`text` with every password, API key and token replaced by `***` (see the module docstring)."""
    with _known_lock:
        known = sorted(_known_secrets, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    text = _USERINFO_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    text = _KEYWORD_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    text = _QUERY_SECRET.sub(lambda m: m.group("head") + MASK, text)
    return _OPENAI_KEY.sub("sk-" + MASK, text)


def one_line(error: BaseException | str, limit: int = 500) -> str:
    """The first non-empty line of an error's text, secrets hidden, at most `limit` characters.

    An exception with no text is named by its class, so the line is never empty.
    """
    text = str(error)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = redact(lines[0]) if lines else (type(error).__name__ if isinstance(error, BaseException) else "")
    return line if len(line) <= limit else line[: limit - 1] + "…"
