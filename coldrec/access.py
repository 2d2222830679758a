"""Who may do what: signed-in identities, roles, and the check every write makes (issue 24).

Two modes, chosen by the process, not by the database:

- **local** (the CLI, and a dashboard without an ``[auth]`` section in ``.streamlit/secrets.toml``):
  one trusted person at the keyboard may do everything, as before sign-in existed; ``who`` is
  whatever name they typed and is recorded as given.
- **sign-in** (:attr:`Access.sign_in` set by the dashboard when ``[auth]`` is configured): ``who``
  is the signed-in email, never typed, and its role comes from the ``roles`` table (edited by an
  admin on the Roles page) or from the configured admins. An email without a role may do nothing.

Roles: a *viewer* sees everything and changes nothing; a *labeller* labels, undoes their own
actions and labels up to :data:`LABELLER_BULK_MAX` items at once; an *admin* also imports, edits
categories and their targets, switches and fine-tunes models and grants roles.

The checks sit in the library's write paths (``Workspace.label``, the imports, ...), so a page
that forgets to hide a button still cannot write; they raise :class:`PermissionDenied`.
CLI commands that a dashboard runs for its own operating-system user (:mod:`coldrec.remote`)
run as :func:`local_operator`: whoever may open the database file may do everything.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import pandas as pd

from .errors import PermissionDenied, StoreError

ROLES = ("viewer", "labeller", "admin")
#: The least role each action needs.
ACTIONS = {
    "label": "labeller",  # label, accept, correct, undo one's own action, bulk up to the limit
    "import": "admin",  # catalog, uploads, categories files, taxonomies, labels files, purchases, the demo
    "categories": "admin",  # add a category, edit descriptions, set target precisions
    "model": "admin",  # switch the bundled model or a fine-tuned version, fine-tune
    "roles": "admin",  # grant and remove roles
}
#: Most items a labeller labels in one action (a bulk label, look-alikes, a table save, auto-accept):
#: more than a person can have looked at is an admin's call.
LABELLER_BULK_MAX = 200

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_OPERATOR: contextvars.ContextVar[bool] = contextvars.ContextVar("coldrec_local_operator", default=False)


@contextmanager
def local_operator() -> Iterator[None]:
    """Within this block (on this thread) every check passes: a CLI command run by the dashboard's
    own operating-system user, who could open the database file anyway."""
    token = _OPERATOR.set(True)
    try:
        yield
    finally:
        _OPERATOR.reset(token)


def normal_email(value: object) -> str:
    """An identity as stored: trimmed, lower case."""
    return str(value or "").strip().lower()


class Access:
    """The role rules of one workspace (see the module docstring). ``sign_in`` false: local mode."""

    def __init__(self, store: object, sign_in: bool = False, admins: Iterable[str] = ()) -> None:
        self.store = store
        self.sign_in = sign_in
        #: Admins from the configuration (``[coldrec] admins`` in secrets.toml): always admins, so
        #: the first sign-in has someone to grant roles and nobody can lock the last admin out.
        self.admins = frozenset(normal_email(a) for a in admins if normal_email(a))

    def configure(self, sign_in: bool, admins: Iterable[str] = ()) -> None:
        """Switch modes (the dashboard calls this once it has read its secrets)."""
        self.sign_in = sign_in
        self.admins = frozenset(normal_email(a) for a in admins if normal_email(a))

    def role_of(self, who: str | None) -> str | None:
        """``who``'s role: ``admin`` for everyone in local mode; in sign-in mode the configured
        admins', else the one granted in the roles table, else ``None`` (no access)."""
        if not self.sign_in or _OPERATOR.get():
            return "admin"
        email = normal_email(who)
        if not email:
            return None
        if email in self.admins:
            return "admin"
        return self.store.role_of(email)  # type: ignore[attr-defined]

    def recorded_as(self, actor: str | None, default: str) -> str:
        """Whom labels an import writes are recorded under: the signed-in ``actor``, or in local
        mode ``default`` ("catalog", "demo"), as before sign-in existed."""
        return actor if self.sign_in and actor else default

    def allows(self, who: str | None, action: str, count: int = 1) -> bool:
        """Whether ``who`` may do ``action`` (on ``count`` items at once)."""
        try:
            self.require(who, action, count)
        except PermissionDenied:
            return False
        return True

    def require(self, who: str | None, action: str, count: int = 1) -> None:
        """Raise :class:`PermissionDenied`, saying why, unless ``who`` may do ``action`` on ``count`` items."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        role = self.role_of(who)
        if role is None:
            raise PermissionDenied(
                f"{normal_email(who) or 'nobody signed in'} has no role on this dashboard: ask an admin to add you on the Roles page"
            )
        needed = ACTIONS[action]
        if ROLES.index(role) < ROLES.index(needed):
            raise PermissionDenied(
                f"{normal_email(who)} is a {role}: {_WHAT[action]} needs the {needed} role (ask an admin on the Roles page)"
            )
        if role == "labeller" and count > LABELLER_BULK_MAX:
            raise PermissionDenied(
                f"{count:,} items at once is more than a labeller may label in one action ({LABELLER_BULK_MAX}): "
                "select fewer, or ask an admin"
            )


_WHAT = {
    "label": "labelling",
    "import": "importing",
    "categories": "changing categories",
    "model": "changing the model",
    "roles": "granting roles",
}


def set_role(ws: object, who: str, email: str, role: str | None) -> None:
    """Grant ``role`` to ``email`` (``None``: remove it), as ``who`` (an admin). A configured admin
    and one's own role cannot be changed here (nobody locks themselves out)."""
    access: Access = ws.access  # type: ignore[attr-defined]
    access.require(who, "roles")
    address = normal_email(email)
    if not _EMAIL.match(address) or len(address) > 254:
        raise StoreError(f"{str(email)[:80]!r} is not an email address")
    if role is not None and role not in ROLES:
        raise StoreError(f"a role is one of {', '.join(ROLES)}, not {str(role)[:40]!r}")
    if address in access.admins:
        raise StoreError(f"{address} is an admin in the configuration ([coldrec] admins in secrets.toml); change it there")
    if access.sign_in and address == normal_email(who):
        raise StoreError("you cannot change your own role: ask another admin")
    store = ws.store  # type: ignore[attr-defined]
    before = store.role_of(address)
    if before == role:
        return
    store.set_role(address, role, by=normal_email(who) or "local")
    store.record_audit(who, "role", subject=address, before=before, after=role)


def roles_table(ws: object) -> pd.DataFrame:
    """Every role: the configured admins (source ``configuration``) and those granted on the page
    (source ``Roles page``): email, role, source, granted_by, granted_at."""
    access: Access = ws.access  # type: ignore[attr-defined]
    granted = ws.store.roles()  # type: ignore[attr-defined]
    granted = granted[~granted["email"].isin(access.admins)].assign(source="Roles page")
    configured = pd.DataFrame({"email": sorted(access.admins), "role": "admin", "source": "configuration"})
    columns = ["email", "role", "source", "granted_by", "granted_at"]
    return pd.concat([configured, granted], ignore_index=True).reindex(columns=columns)


__all__ = [
    "ACTIONS",
    "Access",
    "LABELLER_BULK_MAX",
    "ROLES",
    "local_operator",
    "normal_email",
    "roles_table",
    "set_role",
]
