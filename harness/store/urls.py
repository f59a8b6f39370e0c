"""Store and storage URLs as they may be shown: without passwords."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (``postgresql://u:pw@h/db`` -> ``postgresql://u:***@h/db``).

    Tracking URIs and study storages may carry credentials; anything logged,
    tagged or printed goes through this first.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
