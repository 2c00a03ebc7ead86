"""Secrets stored in the database (meeting passwords): sealed with a key derived from the server's secret key.

A sealed value reads `enc:v1:<Fernet token>`; the Fernet key is HKDF-SHA256 of MEETBOT_SECRET_KEY, so the
database alone (a dump, a backup, a read replica) does not give the passwords away. Values stored before
sealing existed read back as they are. Rotating the secret key: set the new MEETBOT_SECRET_KEY and list the old
one in MEETBOT_PREVIOUS_SECRET_KEYS; values sealed with it still open, and each is sealed with the new key the
next time it is written.
"""

from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from meetbot.errors import MeetBotError

PREFIX = "enc:v1:"
_PURPOSE = b"meetbot: secrets stored in the database"


class SecretUnreadable(MeetBotError):
    """A sealed value that none of the configured secret keys opens (the key was changed without listing the
    old one in MEETBOT_PREVIOUS_SECRET_KEYS)."""

    default_detail = "A stored secret could not be decrypted with the configured secret keys"


@functools.lru_cache(maxsize=16)
def _fernet(secret_key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def seal(value: str, secret_key: str) -> str:
    """value sealed with the current secret key (a value already sealed is left as it is)."""
    if value.startswith(PREFIX):
        return value
    return PREFIX + _fernet(secret_key).encrypt(value.encode()).decode()


def unseal(value: str, secret_keys: tuple[str, ...]) -> str:
    """The plain value of a sealed one (the first key is the current one, then older ones); plain values pass."""
    if not value.startswith(PREFIX):
        return value
    opener = MultiFernet([_fernet(key) for key in secret_keys])
    try:
        return opener.decrypt(value[len(PREFIX) :].encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable() from exc
