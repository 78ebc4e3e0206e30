"""Airflow's accounts under the FAB auth manager, each with one of its database roles.

Run by compose's `airflow-init` after `airflow db migrate` (and by `make test-deploy`), at every start: a
missing account is created, an existing one gets its password from the secrets and its role back. This is
what `airflow users create` and `reset-password` do, in one process and with no password on a command line.
"""

from __future__ import annotations

from ml.deploy.secret_check import require_secret

# account -> (the secret holding its password, FAB role). Viewer reads; Op also triggers, clears and
# backfills runs and edits connections, pools and variables; Admin also manages users and roles.
ACCOUNTS = {
    "admin": ("AIRFLOW_ADMIN_PASSWORD", "Admin"),
    "operator": ("AIRFLOW_OPERATOR_PASSWORD", "Op"),
    "viewer": ("AIRFLOW_VIEWER_PASSWORD", "Viewer"),
}


def provision_airflow_accounts() -> dict[str, str]:
    """Create or update every account of ACCOUNTS; returns what happened to each."""
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    passwords = {username: require_secret(secret) for username, (secret, _) in ACCOUNTS.items()}
    done = {}
    with get_application_builder() as appbuilder:
        security = appbuilder.sm
        for username, (_, role_name) in ACCOUNTS.items():
            role = security.find_role(role_name)
            if role is None:
                raise RuntimeError(f"Airflow has no role {role_name}: run `airflow db migrate` first")
            user = security.find_user(username=username)
            if user is None:
                email = f"{username}@airflow.invalid"  # FAB requires one; nothing is ever sent
                security.add_user(username, username, "account", email, role, passwords[username])
                done[username] = "created"
                continue
            changed = []
            # Only a changed secret resets the password: a reset also ends the account's open sessions.
            if not security.check_password(username, passwords[username]):
                if not security.reset_password(user.id, passwords[username]):
                    raise RuntimeError(f"Airflow did not set the password of {username}")
                changed.append("password")
            if [r.name for r in user.roles] != [role_name]:
                user.roles = [role]
                security.update_user(user)
                changed.append("role")
            done[username] = f"reset {' and '.join(changed)}" if changed else "unchanged"
    return done
