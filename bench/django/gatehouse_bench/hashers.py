from django.contrib.auth.hashers import Argon2PasswordHasher


class GatehouseArgon2PasswordHasher(Argon2PasswordHasher):
    """argon2id with Gatehouse's parameters: t=2, m=19456 KiB, p=1.

    The algorithm name stays "argon2", so hashes look like Django's own
    ("argon2$argon2id$v=19$m=19456,t=2,p=1$...") and, with this hasher first
    in PASSWORD_HASHERS, must_update() is false for them: no rehash on login.
    """

    time_cost = 2
    memory_cost = 19456
    parallelism = 1
