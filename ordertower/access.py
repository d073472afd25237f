"""Who is this, and may they: identities, roles and permissions for every surface.

Roles and who holds them are data, in one governed file (``ordertower/roles.yaml``, or the
deployment's own through ``ORDERTOWER_ROLES_FILE``), validated strictly when loaded (an unknown
permission, role or key stops the load with a message naming it). The dashboards resolve the
signed-in OpenID Connect identity (``st.user``'s claims) with :func:`resolve`; the CLI's write
verbs resolve a named identity (``--as``) the same way. Both then ask :func:`require` in the
read or write path itself, so hiding a page is never the only check.

This module is pure: no Streamlit, no lake. The audit trail is :mod:`ordertower.audit`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ordertower.settings import PROJECT_ROOT, get_settings

DEFAULT_ROLES_FILE = PROJECT_ROOT / "ordertower" / "roles.yaml"

#: The closed list of permissions: what each one opens.
PERMISSIONS: dict[str, str] = {
    "kpis": "KPI dashboards (aggregates only)",
    "carbon": "carbon dashboards (aggregates and lanes)",
    "tracking": "order search and the order timeline (personal data masked)",
    "exceptions": "the exception worklist, live alerts and customer-message previews",
    "dispatch": "dispatch plans, allocations and van rounds",
    "risk.read": "the fraud review queue, scores and reasons",
    "risk.decide": "approve or reject an order held for review",
    "quality": "ingestion and contract health; quarantined records masked",
    "quarantine.raw": "the raw text of quarantined records (may hold personal data)",
    "audit.read": "the audit log",
    "crm.operate": "deliver and requeue customer messages",
}

#: The roles every deployment is expected to define (the issue's minimum); more may be added.
REQUIRED_ROLES = ("viewer", "operator", "risk_reviewer", "steward", "admin")


class AccessDenied(PermissionError):
    """The identity may not do this; the message says who, what is needed and how to get it."""


class RolesFileError(ValueError):
    """The roles file is missing or invalid; the message names the file and the entry."""


class _Role(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str = ""
    permissions: list[str]

    @field_validator("permissions")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(PERMISSIONS))
        if unknown:
            raise ValueError(f"unknown permission(s) {unknown}; known: {sorted(PERMISSIONS)}")
        return value


class _Assignment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str | None = None
    subject: str | None = None
    group: str | None = None
    roles: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_key(self) -> _Assignment:
        keys = [k for k in ("email", "subject", "group") if getattr(self, k)]
        if len(keys) != 1:
            raise ValueError("an assignment names exactly one of email, subject or group")
        if self.email and ("@" not in self.email or self.email != self.email.strip()):
            raise ValueError(f"{self.email!r} is not an e-mail address")
        return self


class _RolesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int
    roles: dict[str, _Role]
    assignments: list[_Assignment] = []

    @model_validator(mode="after")
    def _consistent(self) -> _RolesFile:
        missing = [r for r in REQUIRED_ROLES if r not in self.roles]
        if missing:
            raise ValueError(f"required role(s) not defined: {missing}")
        for i, assignment in enumerate(self.assignments):
            unknown = sorted(set(assignment.roles) - set(self.roles))
            if unknown:
                raise ValueError(f"assignments[{i}] names undefined role(s) {unknown}")
        return self


@dataclass(frozen=True)
class Policy:
    """A loaded roles file: role -> permissions, and who holds which roles."""

    source: Path
    role_permissions: Mapping[str, frozenset[str]]
    by_email: Mapping[str, frozenset[str]]
    by_subject: Mapping[str, frozenset[str]]
    by_group: Mapping[str, frozenset[str]]

    def roles_for(
        self, email: str | None, subject: str | None, groups: Iterable[str]
    ) -> frozenset[str]:
        roles: set[str] = set()
        if email:
            roles |= self.by_email.get(email.lower(), frozenset())
        if subject:
            roles |= self.by_subject.get(subject, frozenset())
        for group in groups:
            roles |= self.by_group.get(group, frozenset())
        return frozenset(roles)

    def permissions_for(self, roles: Iterable[str]) -> frozenset[str]:
        out: set[str] = set()
        for role in roles:
            out |= self.role_permissions.get(role, frozenset())
        return frozenset(out)

    def roles_with(self, permission: str) -> list[str]:
        return sorted(r for r, p in self.role_permissions.items() if permission in p)


def roles_file() -> Path:
    return get_settings().roles_file


def parse_policy(text: str, source: Path) -> Policy:
    """Validate a roles file's text; :class:`RolesFileError` names what is wrong."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RolesFileError(f"{source}: not valid YAML: {exc}") from exc
    try:
        parsed = _RolesFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise RolesFileError(f"{source}: {problems}") from exc

    def index(key: str) -> dict[str, frozenset[str]]:
        out: dict[str, set[str]] = {}
        for a in parsed.assignments:
            value = getattr(a, key)
            if value:
                value = value.lower() if key == "email" else value
                out.setdefault(value, set()).update(a.roles)
        return {k: frozenset(v) for k, v in out.items()}

    return Policy(
        source=source,
        role_permissions={n: frozenset(r.permissions) for n, r in parsed.roles.items()},
        by_email=index("email"),
        by_subject=index("subject"),
        by_group=index("group"),
    )


_cache: dict[Path, tuple[float, Policy]] = {}


def load_policy(path: Path | None = None) -> Policy:
    """The roles file, re-read when it changes on disk (an admin's edit applies at once)."""
    path = (path or roles_file()).resolve()
    try:
        mtime = path.stat().st_mtime
    except OSError as exc:
        raise RolesFileError(f"no roles file at {path}: {exc.strerror}") from exc
    hit = _cache.get(path)
    if hit and hit[0] == mtime:
        return hit[1]
    policy = parse_policy(path.read_text(encoding="utf-8"), path)
    _cache[path] = (mtime, policy)
    return policy


@dataclass(frozen=True)
class Identity:
    """A signed-in person (or a named CLI actor) with the roles the policy gives them."""

    subject: str
    email: str | None = None
    name: str | None = None
    groups: tuple[str, ...] = ()
    roles: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()
    #: where the identity came from: ``oidc`` (the dashboards) or ``cli``
    channel: str = "oidc"
    issuer: str | None = field(default=None, compare=False)

    @property
    def label(self) -> str:
        """How the identity is written in decisions and the audit log."""
        return self.email or self.subject

    @property
    def roles_text(self) -> str:
        return ",".join(sorted(self.roles)) or "(none)"

    def may(self, permission: str) -> bool:
        if permission not in PERMISSIONS:
            raise KeyError(f"unknown permission {permission!r}")
        return permission in self.permissions


def resolve(
    claims: Mapping[str, Any], channel: str = "oidc", policy: Policy | None = None
) -> Identity:
    """The identity behind an ID token's claims (``st.user``), with its roles."""
    policy = policy or load_policy()
    subject = str(claims.get("sub") or "").strip()
    email = claims.get("email")
    email = str(email).strip().lower() if email else None
    if not subject and not email:
        raise AccessDenied("the identity provider returned neither a subject nor an e-mail")
    # an address the provider says it has not verified is not proof of who this is
    trusted_email = email if claims.get("email_verified") is not False else None
    groups = claims.get("groups") or ()
    if isinstance(groups, str):
        groups = (groups,)
    groups = tuple(str(g) for g in groups)
    roles = policy.roles_for(trusted_email, subject or None, groups)
    return Identity(
        subject=subject or email or "",
        email=email,
        name=str(claims["name"]) if claims.get("name") else None,
        groups=groups,
        roles=roles,
        permissions=policy.permissions_for(roles),
        channel=channel,
        issuer=str(claims["iss"]) if claims.get("iss") else None,
    )


def named(identity: str, policy: Policy | None = None) -> Identity:
    """A CLI actor named by e-mail or subject (``--as``), with the roles the policy gives it."""
    identity = (identity or "").strip()
    if not identity:
        raise AccessDenied(
            "name who you act as (--as <e-mail>, or ORDERTOWER_ACTOR): every write is audited"
        )
    claims: dict[str, Any] = {"sub": identity}
    if "@" in identity:
        claims["email"] = identity
    return resolve(claims, channel="cli", policy=policy)


def require(identity: Identity | None, permission: str, what: str = "") -> Identity:
    """Return the identity when it holds ``permission``; raise :class:`AccessDenied` otherwise."""
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")
    what = what or PERMISSIONS[permission]
    if identity is None:
        raise AccessDenied(f"Sign in first: {what} is only shown to signed-in users.")
    if identity.may(permission):
        return identity
    try:
        holders = load_policy().roles_with(permission)
    except RolesFileError:
        holders = []
    needed = " or ".join(holders) if holders else "a role that allows it"
    raise AccessDenied(
        f"{identity.label} ({identity.roles_text}) may not open {what}: it needs the "
        f"{needed} role. Ask an admin to assign it in the roles file."
    )
