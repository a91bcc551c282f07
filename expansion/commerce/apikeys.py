"""API keys: issue, authenticate, authorise by scope; throttle per key, and failed authentication
per client address.

A key looks like ``exp_<prefix>_<secret>``. The prefix finds the row; the SHA-256 digest of the
whole key is compared in constant time. Keys are never logged and never stored in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling
from rest_framework.request import Request

from .models import ApiKey, ApiScope

KEY_PREFIX = "exp_"
# last_used_at is refreshed at most this often, so an ingestion burst does not turn every
# request into an extra UPDATE.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def digest_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    raw_key: str


def api_key_issue(*, name: str, scopes: list[str], created_by=None) -> IssuedKey:
    """Create a key and return it with its clear text, which is not recoverable afterwards."""
    unknown = set(scopes) - set(ApiScope.values)
    if unknown or not scopes:
        raise ValueError(f"scopes must be a non-empty subset of {ApiScope.values}")
    prefix = secrets.token_hex(4)
    raw_key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        name=name,
        prefix=prefix,
        digest=digest_key(raw_key),
        scopes=sorted(set(scopes)),
        created_by=created_by,
    )
    return IssuedKey(api_key=api_key, raw_key=raw_key)


def api_key_revoke(*, api_key: ApiKey) -> None:
    """Revoke a key; idempotent (a revoked key keeps its first revocation time)."""
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def api_key_authenticate(raw_key: str) -> ApiKey | None:
    """The active key matching ``raw_key``, or None."""
    if not raw_key.startswith(KEY_PREFIX):
        return None
    prefix, _, secret = raw_key[len(KEY_PREFIX) :].partition("_")
    if not prefix or not secret:
        return None
    api_key = ApiKey.objects.filter(prefix=prefix, revoked_at__isnull=True).first()
    if api_key is None or not hmac.compare_digest(api_key.digest, digest_key(raw_key)):
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return api_key


class ApiKeyUser(AnonymousUser):
    """The request.user of a key-authenticated request: no admin rights, only the key's scopes."""

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key

    def __str__(self) -> str:
        return f"api-key:{self.api_key.prefix}"

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer exp_…`` (``Api-Key exp_…`` is accepted too)."""

    keywords = ("bearer", "api-key")

    def authenticate(self, request: Request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        keyword, _, raw_key = header.partition(" ")
        if keyword.lower() not in self.keywords:
            return None
        raw_key = raw_key.strip()
        # Checked before the key, and for every key: were a good key let through an address
        # past its limit, a 200 among the 429s would still tell a guesser they had found one.
        throttle = auth_failure_check(request)
        api_key = api_key_authenticate(raw_key) if raw_key else None
        if api_key is None:
            throttle.record(request)
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return ApiKeyUser(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


# The permission that lets a signed-in user read the API with their session (the browsable
# API); superusers hold it implicitly, no role grants it (campaigns/roles.py).
SESSION_READ_PERMISSION = "expansion.read_api_by_session"


class HasApiScope(permissions.BasePermission):
    """Reads need the ``read`` scope, writes the ``write`` scope.

    The API is for API keys. An admin session may only read (GET, HEAD, OPTIONS), and only
    with ``expansion.read_api_by_session`` (superusers hold it; no role grants it): a course
    creator or a marketer signed in to the admin reads nothing through the API. A session
    never writes, not even a superuser's — writes need a key.

    A request with no credentials counts against its address's failed-authentication limit
    (``AuthFailureThrottle``); past the limit it is a 429, not a 401.
    """

    message = "This API key lacks the scope this request needs."

    def has_permission(self, request: Request, view) -> bool:
        scope = ApiScope.READ if request.method in permissions.SAFE_METHODS else ApiScope.WRITE
        api_key = request.auth if isinstance(request.auth, ApiKey) else None
        if api_key is not None:
            if not api_key.has_scope(scope):
                self.message = f"This API key lacks the '{scope}' scope."
                return False
            return True
        user = request.user
        if user is None or not user.is_authenticated:
            auth_failure_check(request).record(request)
            return False
        if scope != ApiScope.READ:
            self.message = "An admin session cannot write through the API; use an API key."
            return False
        if not (user.is_staff and user.has_perm(SESSION_READ_PERMISSION)):
            self.message = (
                "An admin session may read the API only with the permission "
                "'Can read the API from an admin session'; use an API key."
            )
            return False
        return True


class ApiKeyRateThrottle(throttling.SimpleRateThrottle):
    """Per key (or per signed-in user) request rate; ``API_THROTTLE_RATE``, e.g. ``6000/min``.

    Counts live in the default cache: set ``CACHE_URL=redis://…`` so that every web process
    shares them.
    """

    scope = "api_key"

    def get_cache_key(self, request: Request, view) -> str | None:
        if isinstance(request.auth, ApiKey):
            ident = f"key:{request.auth.pk}"
        elif request.user is not None and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class AuthFailureThrottle(throttling.SimpleRateThrottle):
    """Requests that fail to authenticate — a bad, revoked or malformed key, or no
    credentials at all — per client address: ``API_AUTH_FAILURE_RATE``, default ``20/min``.

    Past the limit every API request from the address that does not come with a signed-in
    session is a 429 with ``Retry-After`` (a good key too, see ``ApiKeyAuthentication``) until
    its oldest failure leaves the window; requests refused with a 429 do not extend it. DRF's
    throttles run only after authentication and permissions have passed, so these are
    counted by the authentication class and the permission instead (``auth_failure_check``).

    The address is ``REMOTE_ADDR``; behind trusted proxies set ``API_TRUSTED_PROXIES`` to
    their number, and the client's address is read from ``X-Forwarded-For`` that many hops
    from the right (DRF's ``NUM_PROXIES``). Never set it without such proxies: anyone could
    then choose their address. Clients sharing an address share its limit (a job that keeps
    using a revoked key blocks its host's other keys for the window).
    """

    scope = "auth_failure"
    num_requests: int  # set from the rate by SimpleRateThrottle (not in its stubs)
    duration: int

    def get_cache_key(self, request: Request, view=None) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def exceeded(self, request: Request) -> bool:
        """Whether the address has used up its failures in the window (counts nothing)."""
        self.key = self.get_cache_key(request)
        self.now = self.timer()
        self.history = [at for at in self.cache.get(self.key, []) if at > self.now - self.duration]
        return len(self.history) >= self.num_requests

    def record(self, request: Request) -> None:
        """Count the failure of ``request`` (after ``exceeded``), once however often its
        permissions are checked: the browsable API checks them again for each form it
        might show, on copies of the request sharing its HttpRequest."""
        http_request = request._request
        if getattr(http_request, "auth_failure_counted", False):
            return
        http_request.auth_failure_counted = True  # type: ignore[attr-defined]
        self.history.insert(0, self.now)
        self.cache.set(self.key, self.history, self.duration)


def auth_failure_check(request: Request) -> AuthFailureThrottle:
    """Raise 429 if the request's address is past its failed-authentication limit; else the
    throttle, whose ``record(request)`` counts this request if it fails."""
    throttle = AuthFailureThrottle()
    if throttle.exceeded(request):
        raise exceptions.Throttled(
            wait=throttle.wait(),
            detail="Too many requests from this address failed to authenticate.",
        )
    return throttle


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key issued in the admin: `Authorization: Bearer exp_…`.",
        }
