"""The MLflow server's accounts and what each may do, made (or brought back) to this definition by its admin.

Run once the server is up (compose's `mlflow-accounts` step, `make test-deploy`), as the admin named by
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, and again at every start: a missing account is created,
an existing one gets its password from the secrets (rotate a password by changing the secret) and its grants
set to the levels below. Grants use the wildcard "*": every experiment and registered model, present or future.
"""

from __future__ import annotations

from ml.config import settings
from ml.deploy.secret_check import require_secret
from ml.errors import ConfigError

# account -> (the secret holding its password, [(resource type, permission)]); READ < USE < EDIT < MANAGE.
ACCOUNTS = {
    # The DAG's tasks: log runs, register versions, move @champion / @challenger through the gate.
    "pipeline": ("MLFLOW_PIPELINE_PASSWORD", [("experiment", "EDIT"), ("registered_model", "EDIT")]),
    # A data scientist: read every run, promote and roll back (`python -m ml models ...`), delete versions.
    "scientist": ("MLFLOW_SCIENTIST_PASSWORD", [("experiment", "READ"), ("registered_model", "MANAGE")]),
    # An analyst: read runs, metrics, plots and models; change nothing.
    "analyst": ("MLFLOW_ANALYST_PASSWORD", [("experiment", "READ"), ("registered_model", "READ")]),
}


def _user_exists(auth, username: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        auth.get_user(username)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    return True


def _grant(auth, username: str, resource_type: str, permission: str) -> None:
    """Grant `permission` on every resource of the type; an earlier grant at another level is replaced."""
    from mlflow.exceptions import MlflowException

    try:
        auth.grant_user_permission(username, resource_type, "*", permission)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        auth.revoke_user_permission(username, resource_type, "*")
        auth.grant_user_permission(username, resource_type, "*", permission)


def provision_mlflow_accounts() -> dict[str, str]:
    """Create or update every account of ACCOUNTS with its grants; returns what happened to each."""
    from mlflow.server import get_app_client

    passwords = {username: require_secret(secret) for username, (secret, _) in ACCOUNTS.items()}
    tracking_uri = settings().mlflow_tracking_uri
    if not tracking_uri.startswith(("http://", "https://")):
        raise ConfigError(f"MLflow accounts live on a tracking server: MLFLOW_TRACKING_URI is {tracking_uri}")
    auth = get_app_client("basic-auth", tracking_uri=tracking_uri)
    done = {}
    for username, (_, grants) in ACCOUNTS.items():
        if _user_exists(auth, username):
            auth.update_user_password(username, passwords[username])
            done[username] = "updated"
        else:
            auth.create_user(username, passwords[username])
            done[username] = "created"
        for resource_type, permission in grants:
            _grant(auth, username, resource_type, permission)
    return done
