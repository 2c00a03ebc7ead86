"""/auth: register, login, refresh-token rotation, logout."""

from __future__ import annotations

from api.routing import Context, Router
from meetbot.domain import accounts
from meetbot.errors import Forbidden, Unauthorized
from meetbot.schemas.auth import LoginRequest, LogoutRequest, RefreshRequest, RegisterRequest, TokenPair, User

router = Router()
TAG = "Auth"


def _pair(tokens: accounts.IssuedTokens) -> TokenPair:
    return TokenPair(access_token=tokens.access_token, refresh_token=tokens.refresh_token, expires_in=tokens.expires_in)


@router.route(
    "POST",
    "/auth/register",
    "Create an account",
    TAG,
    body=RegisterRequest,
    response=User,
    status=201,
    auth=False,
    errors=(403, 409),
)
def register(ctx: Context, body: RegisterRequest) -> User:
    if ctx.services.settings.registration == "closed":
        raise Forbidden("Registration is closed on this server: an administrator adds users (meetbot users create)")
    with ctx.transaction() as conn:
        row = accounts.create_user(conn, body.email, body.password, body.name)
    return User.model_validate(row)


@router.route(
    "POST",
    "/auth/login",
    "Log in: access and refresh tokens",
    TAG,
    body=LoginRequest,
    response=TokenPair,
    auth=False,
    errors=(401,),
)
def login(ctx: Context, body: LoginRequest) -> TokenPair:
    with ctx.transaction() as conn:
        user = accounts.authenticate_user(conn, body.email, body.password)
        tokens = accounts.start_session(conn, user.id, ctx.services.token_policy)
    return _pair(tokens)


@router.route(
    "POST",
    "/auth/refresh",
    "Rotate a refresh token",
    TAG,
    body=RefreshRequest,
    response=TokenPair,
    auth=False,
    errors=(401,),
)
def refresh(ctx: Context, body: RefreshRequest) -> TokenPair:
    with ctx.transaction() as conn:
        tokens, reused = accounts.rotate_refresh_token(conn, body.refresh_token, ctx.services.token_policy)
    if reused:  # committed above: the session is revoked for good
        raise Unauthorized("Refresh token already used; the session has been revoked")
    return _pair(tokens)


@router.route(
    "POST", "/auth/logout", "Log out: revoke this session's tokens", TAG, body=LogoutRequest, status=204, errors=(403,)
)
def logout(ctx: Context, body: LogoutRequest) -> None:
    if ctx.principal.api_key_id is not None:  # the caller is known; an API key just has no session to end
        raise Forbidden(
            "Logout ends a login session and needs that session's access token; "
            "an API key stays valid until it is revoked with DELETE /api-keys/{id}"
        )
    with ctx.transaction() as conn:
        if ctx.principal.session_id:
            accounts.revoke_session(conn, ctx.principal.session_id)
        if body.refresh_token:
            session_id = accounts.session_of_refresh_token(conn, body.refresh_token)
            owner = accounts.session_owner(conn, session_id) if session_id else None
            if session_id and owner == ctx.user_id:
                accounts.revoke_session(conn, session_id)
