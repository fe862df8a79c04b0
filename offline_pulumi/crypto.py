"""The passphrase secrets provider: PBKDF2-HMAC-SHA256 key, AES-256-GCM ciphertexts.

Formats follow the real CLI (pkg/secrets/passphrase, resource/config/crypt.go):
``v1:<b64 nonce>:<b64 ciphertext+tag>``; the salt state is ``v1:<b64 salt>:`` followed by the
encryption of the word ``pulumi``, which proves the passphrase on load.

Deriving a key costs a million PBKDF2 rounds in every CLI process. ``OFFLINE_PULUMI_KEY_CACHE``
(a directory, opt-in) keeps the derived key of each passphrase in a 0600 file and lets new
stacks reuse that passphrase's salt, so the cost is paid once per passphrase. Anyone who can
read that directory can decrypt the secrets, so point it only where the passphrase itself is.
"""

from __future__ import annotations

import base64
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
        """A manager for a new stack: a fresh salt, or the key cache's one for this passphrase."""
        passphrase = read_passphrase()
        cached = _KeyCache.from_environment()
        entry = cached.load(passphrase) if cached else None
        salt = entry[0] if entry else _random.token_bytes(8)
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


_KEYS: dict[tuple[str, bytes], bytes] = {}


def key_for(passphrase: str, salt: bytes) -> bytes:
    """The key of a passphrase and salt: from this process, the key cache, or derived."""
    memo = (hashlib.sha256(passphrase.encode()).hexdigest(), salt)
    if memo not in _KEYS:
        cache = _KeyCache.from_environment()
        entry = cache.load(passphrase) if cache else None
        if entry and entry[0] == salt:
            _KEYS[memo] = entry[1]
        else:
            _KEYS[memo] = derive_key(passphrase, salt)
            if cache:
                cache.store(passphrase, salt, _KEYS[memo])
    return _KEYS[memo]


class _KeyCache:
    """Derived keys kept on disk between CLI processes (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def from_environment(cls) -> _KeyCache | None:
        directory = os.environ.get("OFFLINE_PULUMI_KEY_CACHE")
        return cls(Path(directory)) if directory else None

    def _path(self, passphrase: str) -> Path:
        digest = hashlib.sha256(b"offline-pulumi-key:" + passphrase.encode()).hexdigest()
        return self.directory / f"{digest[:32]}.key"

    def load(self, passphrase: str) -> tuple[bytes, bytes] | None:
        """The cached (salt, key) of a passphrase, if any."""
        try:
            salt_text, key_text = self._path(passphrase).read_text().split(":")
            return base64.b64decode(salt_text), base64.b64decode(key_text)
        except (OSError, ValueError):
            return None

    def store(self, passphrase: str, salt: bytes, key: bytes) -> None:
        """Remember a derived key; a cache that cannot be written is only slower."""
        from offline_pulumi.fileio import write_atomic

        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(self._path(passphrase), f"{_b64(salt)}:{_b64(key)}".encode(),
                         mode=0o600)
        except OSError:
            return


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
