"""License keys: mint, parse, fingerprint, and verify at run time (stdlib only).

A key looks like ``ipk1.shop-prod.<32 secret chars>.<7 checksum chars>`` (docs/license.md):

* ``ipk1``      format tag and version;
* namespace     the namespace the key binds (a DNS-1123 label, like a Kubernetes namespace);
* secret        160 random bits in Crockford base32 (lowercase);
* checksum      CRC-32 of ``ipk1.<namespace>.<secret>`` in the same alphabet.

CRC-32 detects every error that spans at most 32 bits: a single changed character and two
swapped neighbours always fail. A dropped or added character changes a fixed-length part's
length (secret, checksum) or, in the namespace, the checksummed text.

Without a governance center this is a binding plus a checksum, not a cryptographic entitlement:
anyone can mint a syntactically valid key. What it gives is that a mistyped key fails the build at
once, that an artifact built for one key refuses to run with another, and that the artifact only
carries a one-way fingerprint of the key.

Exception tree::

    ValueError
     └── LicenseError        the key is malformed, missing, unreadable or not the build's key

No message ever contains the key or a piece of it.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ENV_KEY",
    "ENV_KEY_FILE",
    "LicenseBinding",
    "LicenseError",
    "fingerprint",
    "mint_key",
    "parse_key",
    "read_runtime_key",
    "verify_runtime_key",
]

PREFIX = "ipk1"
ENV_KEY = "INSTPY_LICENSE_KEY"
ENV_KEY_FILE = "INSTPY_LICENSE_FILE"

# Crockford's base32 without i, l, o, u: nothing that reads as another character.
ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_ALPHABET_SET = frozenset(ALPHABET)
SECRET_CHARS = 32  # 32 * 5 = 160 random bits
CHECKSUM_CHARS = 7  # 7 * 5 = 35 bits >= the 32 bits of CRC-32
FINGERPRINT_HEX = 32  # 128 bits of SHA-256: collisions by accident are out of the question
_NAMESPACE_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
# Domain separation: the fingerprint is not the plain SHA-256 any other tool would compute.
_FINGERPRINT_SALT = b"instpy-license-fingerprint\x00"
_MAX_KEY_FILE_BYTES = 4096


class LicenseError(ValueError):
    """A key is malformed, missing, unreadable, or not the one the artifact was built for."""


@dataclass(frozen=True)
class LicenseBinding:
    """What a build records about its key: the namespace and a one-way fingerprint.

    This is the only license information that may appear in an artifact or its manifest.
    """

    namespace: str
    fingerprint: str  # "sha256:" + 32 hex digits

    def to_dict(self) -> dict[str, str]:
        return {"format": PREFIX, "namespace": self.namespace, "fingerprint": self.fingerprint}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> LicenseBinding:
        """Read a binding back from a manifest; raise LicenseError naming a bad field."""
        fmt = data.get("format", PREFIX)
        if fmt != PREFIX:
            raise LicenseError(
                f"license binding has format {fmt!r}, this runtime understands {PREFIX!r}: "
                "rebuild the artifact with a matching instpy version"
            )
        namespace = data.get("namespace")
        fp = data.get("fingerprint")
        if not isinstance(namespace, str) or _NAMESPACE_RE.match(namespace) is None:
            raise LicenseError(
                "license binding has no valid 'namespace': the build manifest is damaged; rebuild"
            )
        if not isinstance(fp, str) or re.fullmatch(r"sha256:[0-9a-f]{32}", fp) is None:
            raise LicenseError(
                "license binding has no valid 'fingerprint': the build manifest is damaged; rebuild"
            )
        return cls(namespace=namespace, fingerprint=fp)


def _encode(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        chars.append(ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _encode(zlib.crc32(body.encode("ascii")), CHECKSUM_CHARS)


def check_namespace(namespace: str) -> str:
    """Return `namespace` if it is a valid DNS-1123 label, else raise LicenseError saying why."""
    if _NAMESPACE_RE.match(namespace) is None:
        raise LicenseError(
            f"namespace {namespace!r} is not valid: use 1-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (like a Kubernetes namespace)"
        )
    return namespace


def mint_key(namespace: str) -> str:
    """Return a new key bound to `namespace` (160 bits from the `secrets` module)."""
    check_namespace(namespace)
    secret = _encode(secrets.randbits(SECRET_CHARS * 5), SECRET_CHARS)
    body = f"{PREFIX}.{namespace}.{secret}"
    return f"{body}.{_checksum(body)}"


def fingerprint(key: str) -> str:
    """One-way fingerprint of a (canonical) key, safe to write into a manifest."""
    digest = hashlib.sha256(_FINGERPRINT_SALT + key.encode("ascii")).hexdigest()
    return "sha256:" + digest[:FINGERPRINT_HEX]


def _bad_chars(part: str, offset: int) -> str | None:
    for i, ch in enumerate(part):
        if ch not in _ALPHABET_SET:
            # The position, never the character: even one character of a key is not echoed.
            return (
                f"character {offset + i + 1} of the key is not a key character "
                "(keys use 0-9 and a-z without i, l, o, u)"
            )
    return None


def parse_key(key: str) -> LicenseBinding:
    """Validate `key` and return its binding; raise LicenseError naming what is wrong.

    Surrounding whitespace is ignored (secret files end with a newline) and case is folded
    (keys get retyped from screens). The message never contains the key.
    """
    canon = key.strip().lower()
    if not canon:
        raise LicenseError("the license key is empty: pass the key printed by `instpy license new`")
    if not canon.isascii() or any(ch.isspace() for ch in canon):
        raise LicenseError(
            "the license key contains whitespace or non-ASCII characters: "
            "copy it again without line breaks or spaces"
        )
    parts = canon.split(".")
    if parts[0] != PREFIX:
        raise LicenseError(
            f"the license key does not start with '{PREFIX}.': this is not an instpy license key "
            "(mint one with `instpy license new --namespace NS`)"
        )
    if len(parts) != 4:
        raise LicenseError(
            f"the license key has {len(parts)} dot-separated parts, expected 4 "
            f"({PREFIX}.NAMESPACE.SECRET.CHECKSUM): a '.' was added or dropped"
        )
    _, namespace, secret, check = parts
    if _NAMESPACE_RE.match(namespace) is None:
        raise LicenseError(
            "the namespace part of the license key is not a valid namespace "
            "(1-63 of a-z, 0-9, '-'): the key was mistyped; copy it again"
        )
    fixed = (("secret", secret, SECRET_CHARS), ("checksum", check, CHECKSUM_CHARS))
    for label, part, want in fixed:
        if len(part) != want:
            raise LicenseError(
                f"the {label} part of the license key has {len(part)} characters, expected {want}: "
                "a character was dropped or added; copy the key again"
            )
    offset = len(PREFIX) + 1 + len(namespace) + 1
    problem = _bad_chars(secret, offset) or _bad_chars(check, offset + SECRET_CHARS + 1)
    if problem:
        raise LicenseError(f"the license key is mistyped: {problem}; copy the key again")
    body = f"{PREFIX}.{namespace}.{secret}"
    if _checksum(body) != check:
        raise LicenseError(
            "the license key's checksum does not match: a character was changed, swapped, "
            "dropped or added; copy the key again from where it was minted"
        )
    return LicenseBinding(namespace=namespace, fingerprint=fingerprint(canon))


def read_runtime_key(environ: Mapping[str, str] | None = None) -> str | None:
    """Return the key the deployment supplies, or None when it supplies none.

    The key comes from INSTPY_LICENSE_KEY or from the file INSTPY_LICENSE_FILE names (a mounted
    Kubernetes Secret). Both at once is refused: which one wins would be a silent guess.
    """
    env = os.environ if environ is None else environ
    inline = env.get(ENV_KEY, "").strip()
    path = env.get(ENV_KEY_FILE, "").strip()
    if inline and path:
        raise LicenseError(f"both {ENV_KEY} and {ENV_KEY_FILE} are set: set only one of them")
    if inline:
        return inline
    if not path:
        return None
    try:
        with Path(path).open("rb") as fh:
            raw = fh.read(_MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise LicenseError(
            f"cannot read the license key file {ENV_KEY_FILE}={path!r}: {exc.strerror or exc}; "
            "check that the Secret is mounted at that path and readable by this user"
        ) from None
    if len(raw) > _MAX_KEY_FILE_BYTES:
        raise LicenseError(
            f"the license key file {ENV_KEY_FILE}={path!r} is larger than "
            f"{_MAX_KEY_FILE_BYTES} bytes: point it at the file holding only the key"
        )
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise LicenseError(
            f"the license key file {ENV_KEY_FILE}={path!r} is not ASCII text: "
            "it should hold only the key"
        ) from None
    if not text:
        raise LicenseError(f"the license key file {ENV_KEY_FILE}={path!r} is empty")
    return text


def verify_runtime_key(
    binding: LicenseBinding,
    environ: Mapping[str, str] | None = None,
    *,
    required: bool = True,
    namespace: str | None = None,
) -> LicenseBinding | None:
    """Check the deployment's key against the build's `binding`.

    Returns the key's binding, or None when no key is supplied and `required` is False.
    Raises LicenseError when the key is missing (and required), malformed, or not the key the
    artifact was built with; and, when `namespace` (the deployment's INSTPY_NAMESPACE) is given,
    when the artifact was built for another namespace.
    """
    if namespace is not None and namespace != binding.namespace:
        raise LicenseError(
            f"this artifact was built for namespace {binding.namespace!r} but is deployed in "
            f"{namespace!r}: deploy it with INSTPY_NAMESPACE={binding.namespace} "
            "or rebuild it with a key for this namespace"
        )
    key = read_runtime_key(environ)
    if key is None:
        if required:
            raise LicenseError(
                f"no license key supplied: set {ENV_KEY} or mount the key and set {ENV_KEY_FILE} "
                f"to its path (the artifact was built for namespace {binding.namespace!r})"
            )
        return None
    try:
        found = parse_key(key)
    except LicenseError as exc:
        raise LicenseError(f"the deployment's license key is unusable: {exc}") from None
    if found.fingerprint != binding.fingerprint:
        raise LicenseError(
            "the deployment's license key is not the key this artifact was built with "
            f"(key fingerprint {found.fingerprint}, build fingerprint {binding.fingerprint}): "
            "supply the key used at build time, or rebuild with this key"
        )
    return found
