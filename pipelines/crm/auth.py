"""The bearer token between the CRM sender and the CRM (the local receiver requires it).

The token is read from a file, never from the command line or a URL, so it shows in no process
list, shell history or log: ``ORDERTOWER_CRM_TOKEN_FILE``, by default
``$ORDERTOWER_HOME/secrets/crm.token``. The default file is created on first use (mode 0600,
``secrets.token_urlsafe(32)``), so the embedded demo needs no set-up; a file named explicitly
must exist (a deployment puts the token its CRM issued there).
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from ordertower.settings import get_settings


class TokenError(RuntimeError):
    """The token file is missing, empty or unreadable; the message says which file."""


def token_file() -> Path:
    return get_settings().crm_token_file


def crm_token(path: Path | None = None) -> str:
    """The bearer token (the file's first line); the default file is created when missing."""
    explicit = path is not None or bool(os.environ.get("ORDERTOWER_CRM_TOKEN_FILE"))
    path = Path(path) if path is not None else token_file()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise TokenError(
                f"no CRM token file at {path} (ORDERTOWER_CRM_TOKEN_FILE): put the CRM's token there"
            ) from None
        text = _create(path)
    except OSError as exc:
        raise TokenError(f"cannot read the CRM token file {path}: {exc.strerror or exc}") from exc
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not token:
        raise TokenError(f"the CRM token file {path} is empty")
    return token


def _create(path: Path) -> str:
    """A new random token in ``path`` (0600); of two processes creating it at once, one wins."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_urlsafe(32) + "\n")
        os.link(tmp, path)  # fails if another process created it first: theirs is kept
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text(encoding="utf-8")


def bearer(token: str) -> dict[str, str]:
    """The request header that presents ``token``."""
    return {"Authorization": f"Bearer {token}"}


def authorised(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header presents ``token`` (compared in constant time)."""
    scheme, _, presented = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(presented.strip().encode("utf-8"), token.encode("utf-8"))
