"""The passphrase secrets provider: PBKDF2-HMAC-SHA256 key, AES-256-GCM ciphertexts.

Formats follow the real CLI (pkg/secrets/passphrase, resource/config/crypt.go):
``v1:<b64 nonce>:<b64 ciphertext+tag>``; the salt state is ``v1:<b64 salt>:`` followed by the
encryption of the word ``pulumi``, which proves the passphrase on load.

Deriving a key costs a million PBKDF2 rounds. Keys are remembered in memory only, per
passphrase and salt: within a process, and in the resident engine (``offline_pulumi/resident``),
to which each command child reports the keys it derived (``report_keys_to``) so that later
children inherit them. There, new stacks also take the salt of a key already known for their
passphrase, so one derivation serves them all. Nothing of a passphrase is ever written to disk.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets as _random
from pathlib import Path

from offline_pulumi.errors import CLIError

ITERATIONS = 1_000_000
KEY_BYTES = 32
_PROOF = b"pulumi"
PASSPHRASE_MISSING = (
    "passphrase must be set with PULUMI_CONFIG_PASSPHRASE or "
    "PULUMI_CONFIG_PASSPHRASE_FILE environment variables"
)


def read_passphrase() -> str:
    """The passphrase from the environment; raise CLIError when there is none."""
    if "PULUMI_CONFIG_PASSPHRASE" in os.environ:
        return os.environ["PULUMI_CONFIG_PASSPHRASE"]
    path = os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise CLIError(f"unable to read PULUMI_CONFIG_PASSPHRASE_FILE: {exc}") from exc
    raise CLIError(PASSPHRASE_MISSING)


def derive_key(passphrase: str, salt: bytes) -> bytes:
    """The AES key for a passphrase and salt (slow on purpose: a million rounds)."""
    return hashlib.pbkdf2_hmac("sha256", passphrase.encode(), salt, ITERATIONS, KEY_BYTES)


class Crypter:
    """Encrypts and decrypts values with one stack's key."""

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)

    def encrypt(self, plaintext: str) -> str:
        """Encrypt a string into the ``v1:`` ciphertext format."""
        nonce = _random.token_bytes(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), None)
        return f"v1:{_b64(nonce)}:{_b64(sealed)}"

    def decrypt(self, ciphertext: str) -> str:
        """Decrypt a ``v1:`` ciphertext; raise CLIError if it is malformed or forged."""
        from cryptography.exceptions import InvalidTag

        parts = ciphertext.split(":")
        if len(parts) != 3 or parts[0] != "v1":
            raise CLIError("malformed secret ciphertext")
        try:
            nonce, sealed = base64.b64decode(parts[1]), base64.b64decode(parts[2])
            return self._aead.decrypt(nonce, sealed, None).decode()
        except (InvalidTag, ValueError) as exc:
            raise CLIError("incorrect passphrase") from exc


class PassphraseManager:
    """The secrets manager of one stack, deriving its key only when first needed."""

    def __init__(self, salt_state: str) -> None:
        self.salt_state = salt_state
        self._crypter: Crypter | None = None

    @classmethod
    def create(cls) -> PassphraseManager:
        """A manager for a new stack: the salt of a key known for this passphrase, or a new one."""
        passphrase = read_passphrase()
        salt = _SALTS.get(_digest(passphrase)) or _random.token_bytes(8)
        crypter = Crypter(key_for(passphrase, salt))
        manager = cls(f"v1:{_b64(salt)}:{crypter.encrypt(_PROOF.decode())}")
        manager._crypter = crypter
        return manager

    @property
    def crypter(self) -> Crypter:
        """The stack's crypter; checks the passphrase the first time."""
        if self._crypter is None:
            parts = self.salt_state.split(":", 2)
            if len(parts) != 3 or parts[0] != "v1":
                raise CLIError("malformed encryption salt")
            crypter = Crypter(key_for(read_passphrase(), base64.b64decode(parts[1])))
            if crypter.decrypt(parts[2]) != _PROOF.decode():
                raise CLIError("incorrect passphrase")
            self._crypter = crypter
        return self._crypter


# (sha256 of the passphrase, salt) -> key; and the salt new stacks of a passphrase take.
_KEYS: dict[tuple[str, bytes], bytes] = {}
_SALTS: dict[str, bytes] = {}
_report_fd: int | None = None


def _digest(passphrase: str) -> str:
    return hashlib.sha256(passphrase.encode()).hexdigest()


def key_for(passphrase: str, salt: bytes) -> bytes:
    """The key of a passphrase and salt: remembered in memory, or derived."""
    memo = (_digest(passphrase), salt)
    if memo not in _KEYS:
        _KEYS[memo] = derive_key(passphrase, salt)
        if _report_fd is not None:
            line = f"{memo[0]} {_b64(salt)} {_b64(_KEYS[memo])}\n".encode()
            # Under PIPE_BUF: one atomic write. A resident that is gone just misses the key.
            with contextlib.suppress(OSError):
                os.write(_report_fd, line)
    return _KEYS[memo]


def report_keys_to(fd: int) -> None:
    """Write every key this process derives from now on to ``fd`` (a pipe to the resident)."""
    global _report_fd
    _report_fd = fd


def remember_report(line: bytes) -> None:
    """Remember a key a command reported (``<digest> <salt> <key>``); ignore a malformed line."""
    try:
        digest, salt_text, key_text = line.decode().split(" ")
        salt, key = base64.b64decode(salt_text), base64.b64decode(key_text)
    except ValueError:
        return
    if len(key) == KEY_BYTES:
        _KEYS[(digest, salt)] = key
        _SALTS.setdefault(digest, salt)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
