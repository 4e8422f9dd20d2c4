"""Settings for the Django + django-axes baseline of Gatehouse's sign-in and
account-recovery flows, and the django-oauth-toolkit baseline of its OpenID
Connect provider. Stock Django pieces only; see ../README.md."""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

DB_PATH = Path(os.environ.get("DJANGO_BENCH_DB", BASE_DIR / "django.db"))
MAIL_DIR = Path(os.environ.get("DJANGO_BENCH_MAIL_DIR", DB_PATH.parent / "mail"))

# A benchmark on loopback: a fixed key unless one is given.
SECRET_KEY = os.environ.get(
    "DJANGO_BENCH_SECRET_KEY",
    "bench-only-not-secret-3f9c1e7a2b8d4f6a0c5e9b1d7a3f8c2e6b4d0a9f1c7e5b3",
)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "axes",
    "oauth2_provider",
    "accounts",
    "provider",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # django-axes: last, as its documentation says.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # django-axes: first, so a locked-out username never reaches the hasher.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "gatehouse_bench.urls"
WSGI_APPLICATION = "gatehouse_bench.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Project templates first, so they win over those apps ship.
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ],
        },
    },
]

# SQLite set up as Django 5.1+ documents for a multi-process server, and as
# Gatehouse sets up its own SQLite file: WAL, synchronous=NORMAL, a busy
# timeout, and BEGIN IMMEDIATE so two workers never deadlock upgrading a
# read transaction to a write (django-axes updates its counter inside
# transaction.atomic()).
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(DB_PATH),
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
}

PASSWORD_HASHERS = [
    "gatehouse_bench.hashers.GatehouseArgon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    # Only for the OpenID Connect clients' secrets (see the hasher).
    "gatehouse_bench.hashers.ClientSecretSHA256Hasher",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "/login"
LOGIN_REDIRECT_URL = "/account"
LOGOUT_REDIRECT_URL = "/login"

# Reset links are good for 4 hours, as in Gatehouse.
PASSWORD_RESET_TIMEOUT = 4 * 3600

EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = str(MAIL_DIR)
DEFAULT_FROM_EMAIL = "gatehouse-bench@localhost"

# django-axes: 3 failures lock the username (whatever the address) for 12 hours.
AXES_FAILURE_LIMIT = 3
AXES_COOLOFF_TIME = 12  # hours
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
# axes.W006 warns that locking by username alone lets an attacker lock anyone
# out; that is the point here (Gatehouse locks the account, not the address).
SILENCED_SYSTEM_CHECKS = ["axes.W006"]

# django-oauth-toolkit as an OpenID Connect provider, set like Gatehouse:
# the authorization code flow with PKCE (S256), access tokens for 10
# minutes, refresh tokens rotated on every use and a reused one revoking
# its family, ID tokens signed RS256 with a 2048-bit key that run.sh makes.
OIDC_KEY_PATH = os.environ.get("DJANGO_BENCH_OIDC_KEY", "")
OAUTH2_PROVIDER = {
    "OIDC_ENABLED": True,
    "OIDC_RSA_PRIVATE_KEY": Path(OIDC_KEY_PATH).read_text() if OIDC_KEY_PATH else "",
    "OAUTH2_VALIDATOR_CLASS": "provider.validators.StaffClaimsValidator",
    "SCOPES": {
        "openid": "OpenID Connect",
        "profile": "Name and username",
        "email": "Email address",
    },
    "DEFAULT_SCOPES": ["openid"],
    "PKCE_REQUIRED": True,
    "ACCESS_TOKEN_EXPIRE_SECONDS": 600,
    "ID_TOKEN_EXPIRE_SECONDS": 600,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["http", "https"],
}

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Quiet: only errors (5xx, crashes) reach stderr, which gunicorn captures
# into its error log. Django would otherwise log every 4xx (each axes
# lockout, each CSRF failure) as a warning.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler", "level": "ERROR"}},
    "root": {"handlers": ["stderr"], "level": "ERROR"},
    "loggers": {
        "django": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
        "axes": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
        "oauth2_provider": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
    },
}
