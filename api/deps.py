"""What routes get from the app: built once in the composition root, handed out by Depends."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session, sessionmaker

from alerting.feed import AlertFeed
from alerting.visits import FOLLOWUP_VISIT_DUE
from api.downlink import DeviceDownlink
from api.login_limit import LoginLimiter
from api.streaming import StreamSettings, TimelineWatch
from api.tokens import InvalidTokenError, Principal, TokenService
from api.users import Role, token_state
from devices.catalogue import CATALOGUE, Catalogue
from devices.clock import Clock
from ingest.telemetry.ports import TelemetryReader

TOKEN_URL = "/api/v1/auth/token"  # noqa: S105 - a path, not a password

# A readiness check answers "is this dependency reachable now?" without raising.
ReadinessCheck = Callable[[], bool]


@dataclass(frozen=True, kw_only=True, slots=True)
class ApiContext:
    sessions: sessionmaker[Session]
    tokens: TokenService
    feed: AlertFeed
    clock: Clock
    readiness: Mapping[str, ReadinessCheck] = field(default_factory=dict)
    # Checks that are reported but do not make the process unready: the telemetry store (its
    # writer spools meanwhile; a load balancer must not take alerts away because of it).
    advisory_checks: frozenset[str] = frozenset()
    catalogue: Catalogue = field(default_factory=lambda: CATALOGUE)
    # Acks to devices. None: this process has no broker connection; alert actions still work
    # and the timeline records that the device was not told.
    downlink: DeviceDownlink | None = None
    # Devices' telemetry in InfluxDB. None: no telemetry store is configured.
    telemetry: TelemetryReader | None = None
    # The SSE stream's shared watch on the timeline (and its settings).
    streams: TimelineWatch = field(default_factory=lambda: TimelineWatch(StreamSettings()))
    # Failed logins per user and per client address (429 beyond them).
    logins: LoginLimiter = field(default_factory=LoginLimiter)
    # An alert resolved visit_needed: the visit is due this long after (rules [visits]).
    visit_followup_due: timedelta = FOLLOWUP_VISIT_DUE


def get_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


Context = Annotated[ApiContext, Depends(get_context)]


def get_session(context: Context) -> Iterator[Session]:
    with context.sessions() as session:
        yield session


DbSession = Annotated[Session, Depends(get_session)]

_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


def get_principal(context: Context, token: Annotated[str | None, Depends(_bearer)]) -> Principal:
    if token is None:
        raise unauthorized("not authenticated")
    return verified(context, token)


def verified(context: ApiContext, token: str) -> Principal:
    """The token's principal, if it is ours, unexpired, and its user is still active at the
    version it was issued for (disabling a user, or changing their role, scope or password,
    ends their tokens at once, on every replica: the check is one indexed read)."""
    try:
        principal = context.tokens.verify(token)
    except InvalidTokenError as exc:
        raise unauthorized("invalid or expired token") from exc
    with context.sessions() as session:
        state = token_state(session, principal.username)
    if state != (True, principal.version):
        raise unauthorized("invalid or expired token")
    return principal


CurrentUser = Annotated[Principal, Depends(get_principal)]


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


def require_role(*roles: Role) -> Callable[[Principal], Principal]:
    """A dependency that lets only ``roles`` through (403 for the others)."""
    allowed = frozenset(roles)

    def check(user: CurrentUser) -> Principal:
        if user.role not in allowed:
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=f"the {user.role.value} role may not do this",
            )
        return user

    return check


# Who may see elders' personal data; engineers see devices, not people. A visitor sees the
# elders of their own community (the routes apply every caller's scope).
PeopleReader = Annotated[
    Principal,
    Depends(require_role(Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN, Role.VISITOR)),
]
# The control room's staff: the alert queue, devices and telemetry. Not visitors, who go to
# doors and need the visit, the elder and the contacts, not the fleet nor the queue.
Staff = Annotated[
    Principal,
    Depends(require_role(Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN, Role.ENGINEER)),
]
RegistryAdmin = Annotated[Principal, Depends(require_role(Role.ADMIN))]
DeviceEditor = Annotated[Principal, Depends(require_role(Role.ADMIN, Role.ENGINEER))]
Engineer = Annotated[Principal, Depends(require_role(Role.ENGINEER, Role.ADMIN))]
