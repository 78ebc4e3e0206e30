"""Contact data kept to what is needed: emails become keyed pseudonyms when they land, phones are dropped.

The key (SHOP_PSEUDONYM_KEY, a secret of at least 32 characters) makes the pseudonym an HMAC, not a plain
hash: a dictionary of addresses cannot reverse it without the key. Unset, a random key is made once in
the privacy folder (the embedded setup); a deployment sets it from its secrets, and a short or sample key
is refused. The same key hashes forgotten user ids for the suppression list (ml.privacy.suppression).
Keep it: with a new key, pseudonyms no longer match earlier ones and the suppression list no longer applies.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

import pandas as pd

from ml.config import Settings, settings
from ml.deploy.secret_check import secret_problem
from ml.errors import ConfigError
from ml.storage import replace_durably, temporary_path

KEY_ENV = "SHOP_PSEUDONYM_KEY"
MIN_KEY_LENGTH = 32
# Columns of a users export that identify a person and that nothing downstream needs in clear.
CONTACT_COLUMNS = ("email", "phone")


def pseudonym_key(cfg: Settings | None = None) -> bytes:
    """The key from SHOP_PSEUDONYM_KEY, else the one generated in the privacy folder (made on first use)."""
    cfg = cfg or settings()
    configured = os.environ.get(KEY_ENV, "")
    if configured:
        return checked_key(configured, KEY_ENV).encode()
    path = cfg.privacy_dir / "pseudonym.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_path(path)
        # Readable by its owner only from the first byte, then renamed into place whole.
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write(secrets.token_hex(32))
        replace_durably(tmp, path)
    return checked_key(path.read_text().strip(), str(path)).encode()


def checked_key(value: str, name: str) -> str:
    """`value` if it can serve as a secret; ConfigError naming `name` otherwise."""
    if len(value) < MIN_KEY_LENGTH or secret_problem(value):  # the deployment's rules for any secret, and longer
        raise ConfigError(
            f"{name} must be a random secret of at least {MIN_KEY_LENGTH} characters "
            '(python -c "import secrets; print(secrets.token_hex(32))")'
        )
    return value


def keyed_hashes(values: pd.Series, purpose: str, key: bytes | None = None) -> pd.Series:
    """HMAC-SHA256 (hex) of each value's text under the key, per purpose (an email and a user id of the same
    text get different pseudonyms); missing values stay missing."""
    key = key or pseudonym_key()
    prefix = f"{purpose}:".encode()

    def one(text: str) -> str:
        return hmac.new(key, prefix + text.encode(), hashlib.sha256).hexdigest()

    present = values.notna()
    out = pd.Series(pd.NA, index=values.index, dtype="string")
    out[present] = [one(str(v)) for v in values[present]]
    return out


def pseudonymise_users(frame: pd.DataFrame) -> pd.DataFrame:
    """A users table as it may be stored: `email_hash` (keyed, of the lowercased trimmed address) for `email`,
    no phone. A table already pseudonymised passes unchanged."""
    out = frame.drop(columns=[c for c in CONTACT_COLUMNS if c in frame.columns])
    if "email" in frame.columns:
        emails = frame["email"].astype("string").str.strip().str.lower().replace("", pd.NA)
        out["email_hash"] = keyed_hashes(emails, "email")
    elif "email_hash" not in out.columns:
        out["email_hash"] = pd.Series(pd.NA, index=frame.index, dtype="string")
    return out


_LETTERS = re.compile(r"[^\W\d_]")
_DIGITS = re.compile(r"\d")


def redacted(value: object, limit: int = 24) -> str:
    """A value's shape without its content, for messages and parse errors: letters become x, digits 9
    ("2026-13-45" -> "9999-99-99", "ann@shop.de" -> "xxx@xxxx.xx"); long values are cut."""
    text = _DIGITS.sub("9", _LETTERS.sub("x", str(value)))
    return text if len(text) <= limit else text[:limit] + "..."


def key_fingerprint(key: bytes | None = None) -> str:
    """Names the key without revealing it: the suppression list records which key its hashes used."""
    return hmac.new(key or pseudonym_key(), b"fingerprint", hashlib.sha256).hexdigest()[:16]


def contact_columns_in(path: Path) -> list[str]:
    """The raw contact columns a Parquet file holds (none once pseudonymised)."""
    import pyarrow.parquet as pq

    return [c for c in CONTACT_COLUMNS if c in pq.read_schema(path).names]
