import hashlib

from django.contrib.auth.hashers import Argon2PasswordHasher, BasePasswordHasher, mask_hash
from django.utils.crypto import constant_time_compare


class GatehouseArgon2PasswordHasher(Argon2PasswordHasher):
    """argon2id with Gatehouse's parameters: t=2, m=19456 KiB, p=1.

    The algorithm name stays "argon2", so hashes look like Django's own
    ("argon2$argon2id$v=19$m=19456,t=2,p=1$...") and, with this hasher first
    in PASSWORD_HASHERS, must_update() is false for them: no rehash on login.
    """

    time_cost = 2
    memory_cost = 19456
    parallelism = 1


class ClientSecretSHA256Hasher(BasePasswordHasher):
    """A salted SHA-256, for the OpenID Connect clients' secrets only:
    they are 256 random bits, so a slow hash adds nothing, and Gatehouse
    stores its client secrets as a SHA-256 too. django-oauth-toolkit
    otherwise hashes a client secret with the first password hasher
    (argon2id here) and verifies it on every token request."""

    algorithm = "sha256secret"

    def encode(self, password, salt):
        self._check_encode_args(password, salt)
        digest = hashlib.sha256((salt + password).encode()).hexdigest()
        return f"{self.algorithm}${salt}${digest}"

    def decode(self, encoded):
        algorithm, salt, digest = encoded.split("$", 2)
        assert algorithm == self.algorithm
        return {"algorithm": algorithm, "hash": digest, "salt": salt}

    def verify(self, password, encoded):
        decoded = self.decode(encoded)
        return constant_time_compare(encoded, self.encode(password, decoded["salt"]))

    def safe_summary(self, encoded):
        decoded = self.decode(encoded)
        return {"algorithm": decoded["algorithm"], "salt": mask_hash(decoded["salt"])}

    def must_update(self, encoded):
        return False

    def harden_runtime(self, password, encoded):
        pass
