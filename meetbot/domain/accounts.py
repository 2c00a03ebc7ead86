"""Users, login sessions with rotating refresh tokens, JWT access tokens and API keys."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import jwt
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from meetbot.db import now_utc
from meetbot.db.after_commit import after_commit
from meetbot.db.tables import api_keys, auth_sessions, refresh_tokens, users
from meetbot.domain.principal_cache import bump_revocation_epoch
from meetbot.errors import Conflict, NotFound, Unauthorized

API_KEY_PREFIX = "mb_"
JWT_ALGORITHM = "HS256"
_hasher = PasswordHasher()
# A hash to verify against when the email is unknown, so both paths take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user, through an API key or through a login session."""

    user_id: int
    api_key_id: int | None = None
    session_id: str | None = None

    @property
    def rate_limit_key(self) -> str:
        return f"key:{self.api_key_id}" if self.api_key_id else f"user:{self.user_id}"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# --- users -----------------------------------------------------------------------------------


EMAIL_TAKEN = "Email already registered"


def create_user(conn: sa.Connection, email: str, password: str, name: str) -> sa.Row:
    """Conflict when the email is taken, also when a concurrent registration wins the race for it."""
    email = email.strip().lower()
    if conn.execute(sa.select(users.c.id).where(users.c.email == email)).first():
        raise Conflict(EMAIL_TAKEN)
    now = now_utc()
    values = {"email": email, "name": name, "password_hash": hash_password(password)}
    try:
        return conn.execute(users.insert().values(**values, created_at=now, updated_at=now).returning(*users.c)).one()
    except sa.exc.IntegrityError as exc:  # the unique index on email: someone registered it meanwhile
        raise Conflict(EMAIL_TAKEN) from exc  # (the caller's transaction rolls back with it)


def update_user(conn: sa.Connection, user_id: int, **values: object) -> sa.Row:
    """Change a user's columns; Conflict when a new email is taken (checked, and raced, like create_user)."""
    email = values.get("email")
    if email is not None:
        taken = conn.execute(sa.select(users.c.id).where(users.c.email == email, users.c.id != user_id)).first()
        if taken:
            raise Conflict(EMAIL_TAKEN)
    if values:
        try:
            conn.execute(users.update().where(users.c.id == user_id).values(updated_at=now_utc(), **values))
        except sa.exc.IntegrityError as exc:
            raise Conflict(EMAIL_TAKEN) from exc
    return get_user(conn, user_id)


def get_user(conn: sa.Connection, user_id: int) -> sa.Row:
    row = conn.execute(sa.select(users).where(users.c.id == user_id)).first()
    if row is None:
        raise NotFound("User not found")
    return row


def authenticate_user(conn: sa.Connection, email: str, password: str) -> sa.Row:
    row = conn.execute(sa.select(users).where(users.c.email == email.strip().lower())).first()
    ok = verify_password(row.password_hash if row else _DUMMY_HASH, password)
    if row is None or not ok:
        raise Unauthorized("Incorrect email or password")
    return row


def count_users(conn: sa.Connection) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(users)).scalar_one()


# --- sessions and tokens ---------------------------------------------------------------------


@dataclass(frozen=True)
class TokenPolicy:
    """How tokens are signed and how long they live (from settings)."""

    secret: str = field(repr=False)
    access_ttl: int
    refresh_ttl: int


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int


def _issue_access_token(user_id: int, session_id: str, secret: str, ttl: int) -> str:
    now = now_utc()
    claims = {
        "sub": str(user_id),
        "sid": session_id,
        "typ": "access",
        "iat": now,
        "exp": now + timedelta(seconds=ttl),
    }
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


def _issue_refresh_token(conn: sa.Connection, session_id: str, ttl: int) -> str:
    token = "mbr_" + secrets.token_urlsafe(32)
    now = now_utc()
    conn.execute(
        refresh_tokens.insert().values(
            session_id=session_id,
            token_hash=token_digest(token),
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
        )
    )
    return token


def _issue_pair(conn: sa.Connection, user_id: int, session_id: str, policy: TokenPolicy) -> IssuedTokens:
    return IssuedTokens(
        access_token=_issue_access_token(user_id, session_id, policy.secret, policy.access_ttl),
        refresh_token=_issue_refresh_token(conn, session_id, policy.refresh_ttl),
        expires_in=policy.access_ttl,
    )


def start_session(conn: sa.Connection, user_id: int, policy: TokenPolicy) -> IssuedTokens:
    session_id = uuid.uuid4().hex
    conn.execute(auth_sessions.insert().values(id=session_id, user_id=user_id, created_at=now_utc()))
    return _issue_pair(conn, user_id, session_id, policy)


def revoke_other_sessions(conn: sa.Connection, user_id: int, keep_session_id: str | None) -> None:
    """End every login session of user_id but keep_session_id (None: end them all), after a password change.

    Revoking a session kills its refresh tokens and the access tokens issued from it (an access token
    is only accepted while its session, the JWT's sid, is not revoked). API keys are not sessions and
    are left alone: they are revoked one by one through /api-keys.
    """
    where = [auth_sessions.c.user_id == user_id, auth_sessions.c.revoked_at.is_(None)]
    if keep_session_id is not None:
        where.append(auth_sessions.c.id != keep_session_id)
    conn.execute(auth_sessions.update().where(*where).values(revoked_at=now_utc()))
    after_commit(conn, bump_revocation_epoch)  # this process's cached callers go at once, others' within 1 s


def revoke_session(conn: sa.Connection, session_id: str) -> None:
    conn.execute(
        auth_sessions.update()
        .where(auth_sessions.c.id == session_id, auth_sessions.c.revoked_at.is_(None))
        .values(revoked_at=now_utc())
    )
    after_commit(conn, bump_revocation_epoch)


def rotate_refresh_token(conn: sa.Connection, token: str, policy: TokenPolicy) -> tuple[IssuedTokens, bool]:
    """Trade a refresh token for a new pair; returns (tokens, reused).

    A refresh token works once. Presenting one that was already used means it leaked: the whole
    session (every token descended from the same login) is revoked, and the caller gets 401.
    """
    row = conn.execute(
        sa.select(refresh_tokens, auth_sessions.c.user_id, auth_sessions.c.revoked_at.label("session_revoked"))
        .join(auth_sessions, auth_sessions.c.id == refresh_tokens.c.session_id)
        .where(refresh_tokens.c.token_hash == token_digest(token))
    ).first()
    if row is None or row.session_revoked is not None or row.expires_at <= now_utc():
        raise Unauthorized("Invalid refresh token")
    claimed = conn.execute(
        refresh_tokens.update()
        .where(refresh_tokens.c.id == row.id, refresh_tokens.c.used_at.is_(None))
        .values(used_at=now_utc())
    ).rowcount
    if claimed != 1:
        revoke_session(conn, row.session_id)
        return IssuedTokens("", "", 0), True
    return _issue_pair(conn, row.user_id, row.session_id, policy), False


def session_of_refresh_token(conn: sa.Connection, token: str) -> str | None:
    return conn.execute(
        sa.select(refresh_tokens.c.session_id).where(refresh_tokens.c.token_hash == token_digest(token))
    ).scalar()


def session_owner(conn: sa.Connection, session_id: str) -> int | None:
    return conn.execute(sa.select(auth_sessions.c.user_id).where(auth_sessions.c.id == session_id)).scalar()


def access_token_principal(conn: sa.Connection, token: str, secret: str) -> tuple[Principal, float]:
    """The caller of a valid access token whose session is live, and the seconds the token still lives."""
    try:
        claims = jwt.decode(token, secret, algorithms=[JWT_ALGORITHM], options={"require": ["exp", "sub", "sid"]})
    except jwt.PyJWTError as exc:
        raise Unauthorized("Invalid or expired token") from exc
    if claims.get("typ") != "access":
        raise Unauthorized("Invalid or expired token")
    session = conn.execute(
        sa.select(auth_sessions.c.user_id, auth_sessions.c.revoked_at).where(auth_sessions.c.id == claims["sid"])
    ).first()
    if session is None or session.revoked_at is not None or str(session.user_id) != claims["sub"]:
        raise Unauthorized("Invalid or expired token")
    expires_in = float(claims["exp"]) - now_utc().timestamp()
    return Principal(user_id=session.user_id, session_id=claims["sid"]), expires_in


# --- API keys --------------------------------------------------------------------------------


def create_api_key(conn: sa.Connection, user_id: int, name: str, max_active: int | None = None) -> tuple[sa.Row, str]:
    """Returns (row, full key); only the key's digest is stored. Conflict when the user already has max_active
    unrevoked keys (counted under a lock on the user's row, so concurrent creations cannot pass it together)."""
    if max_active is not None:
        conn.execute(users.update().where(users.c.id == user_id).values(id=users.c.id))  # row lock (PG), write lock
        active = conn.execute(
            sa.select(sa.func.count()).where(api_keys.c.user_id == user_id, api_keys.c.revoked_at.is_(None))
        ).scalar_one()
        if active >= max_active:
            raise Conflict(f"At most {max_active} active API keys per user: revoke one (DELETE /api-keys/{{id}}) first")
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    row = conn.execute(
        api_keys.insert()
        .values(user_id=user_id, name=name, prefix=key[:10], key_hash=token_digest(key), created_at=now_utc())
        .returning(*api_keys.c)
    ).one()
    return row, key


def principal_from_api_key(conn: sa.Connection, key: str) -> Principal:
    """The caller of a live API key. Reads only: the key's last-used time is the request log's to write."""
    digest = token_digest(key)
    row = conn.execute(
        sa.select(api_keys.c.id, api_keys.c.user_id, api_keys.c.key_hash, api_keys.c.revoked_at).where(
            api_keys.c.key_hash == digest
        )
    ).first()
    # The lookup is by digest; compare again in constant time so no branch depends on the key.
    if row is None or not hmac.compare_digest(row.key_hash, digest) or row.revoked_at is not None:
        raise Unauthorized("Invalid API key")
    return Principal(user_id=row.user_id, api_key_id=row.id)


def revoke_api_key(conn: sa.Connection, user_id: int, key_id: int) -> None:
    row = conn.execute(
        sa.select(api_keys.c.revoked_at).where(api_keys.c.id == key_id, api_keys.c.user_id == user_id)
    ).first()
    if row is None or row.revoked_at is not None:
        raise NotFound("API key not found")
    conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(revoked_at=now_utc()))
    after_commit(conn, bump_revocation_epoch)


def get_api_key(conn: sa.Connection, user_id: int, key_id: int) -> sa.Row:
    row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id, api_keys.c.user_id == user_id)).first()
    if row is None:
        raise NotFound("API key not found")
    return row


def bearer_principal(conn: sa.Connection, token: str, secret: str) -> tuple[Principal, float | None]:
    """The caller of an API key or access token, and the seconds the token still lives (None: until revoked)."""
    if token.startswith(API_KEY_PREFIX):
        return principal_from_api_key(conn, token), None
    return access_token_principal(conn, token, secret)
