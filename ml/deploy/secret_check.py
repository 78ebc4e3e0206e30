"""Refuse a deployment secret that is missing, short or a well-known default, before any service uses it.

Postgres bakes its role passwords into the volume on the first start and MLflow its admin into the user store:
a weak value caught only later stays. Each refusal is one line naming the secret, never echoing its value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

from ml.errors import ConfigError

MIN_LENGTH = 16
# Defaults that images, tutorials and example files ship with; a secret made of one (or of one repeated,
# whatever its case, digits and punctuation) is refused however long it is.
WELL_KNOWN = frozenset(
    {
        "admin", "administrator", "airflow", "mlflow", "postgres", "password", "passwd", "pass", "secret",
        "changeme", "change", "changeit", "default", "example", "test", "root", "letmein", "qwerty",
        "pipeline", "scientist", "analyst", "operator", "viewer", "user", "guest", "shop",
    }
)  # fmt: skip
MIN_DISTINCT = 8


# Secrets that must be longer: the pseudonym key is an HMAC key (ml.privacy.pseudonyms).
LONGER = {"SHOP_PSEUDONYM_KEY": 32}


def secret_problem(value: str | None, min_length: int = MIN_LENGTH) -> str | None:
    """Why `value` cannot be a deployment secret, or None when it can."""
    if not value:
        return "not set (see .env.example)"
    if len(value) < min_length:
        return f"{len(value)} characters; at least {min_length} are needed (see .env.example)"
    letters = re.sub(r"[^a-z]", "", value.lower())
    if letters and any(letters == word * (len(letters) // len(word)) for word in WELL_KNOWN):
        return "a well-known default; generate a random one (see .env.example)"
    if len(set(value)) < MIN_DISTINCT:
        return f"fewer than {MIN_DISTINCT} different characters; generate a random one (see .env.example)"
    return None


def secret_problems(names: Iterable[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """One `NAME: why` line per refused secret among `names`, read from `environ` (default: this process's)."""
    environ = os.environ if environ is None else environ
    return [
        f"{name}: {problem}"
        for name in names
        if (problem := secret_problem(environ.get(name), LONGER.get(name, MIN_LENGTH)))
    ]


def check_secrets(names: Iterable[str], environ: Mapping[str, str] | None = None) -> None:
    """Raise one line naming every refused secret (the CLI prints it and exits non-zero)."""
    problems = secret_problems(names, environ)
    if problems:
        raise ConfigError("; ".join(problems))


def require_secret(name: str) -> str:
    """The value of secret `name` from the environment, refused as `check_secrets` would."""
    check_secrets([name])
    return os.environ[name]
