"""Settings of the simplejwt peer that bench/peer/run.sh measures.

Everything that varies comes from the environment (run.sh sets it):
  PEER_DB            SQLite database file (on disk, in a temporary directory)
  PEER_ALG           RS256 | ES256
  PEER_PRIVATE_KEY   PEM file of the signing key (RSA 2048 or P-256, made fresh by run.sh)
  PEER_PUBLIC_KEY    PEM file of the verifying key
  PEER_SYNCHRONOUS   SQLite synchronous pragma (FULL, as jwtd; NORMAL for the reference figures)
"""
import os
from datetime import timedelta
from pathlib import Path


def _env(name):
    try:
        return os.environ[name]
    except KeyError:
        raise RuntimeError(f"bench peer: {name} is not set (start it through bench/peer/run.sh)") from None


SECRET_KEY = "bench-peer-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "peersite.urls"
WSGI_APPLICATION = "peersite.wsgi.application"
TEMPLATES = []

_sync = os.environ.get("PEER_SYNCHRONOUS", "FULL").upper()
if _sync not in ("OFF", "NORMAL", "FULL", "EXTRA"):
    raise RuntimeError(f"bench peer: PEER_SYNCHRONOUS={_sync} is not OFF, NORMAL, FULL or EXTRA")

if os.environ.get("PEER_PG_NAME"):
    # PostgreSQL through psycopg (bench/postgres.sh's throwaway cluster).
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _env("PEER_PG_NAME"),
            "USER": "jwtd",
            "HOST": "127.0.0.1",
            "PORT": _env("PEER_PG_PORT"),
            # One connection per worker for its whole life, as on SQLite.
            "CONN_MAX_AGE": None,
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _env("PEER_DB"),
            # One connection per worker for its whole life (the best case for SQLite).
            "CONN_MAX_AGE": None,
            "OPTIONS": {
                "timeout": 10,  # busy timeout in seconds, as jwtd's
                # BEGIN IMMEDIATE: a writer takes the lock first, so two refreshes never
                # deadlock on a read-to-write upgrade ("database is locked").
                "transaction_mode": "IMMEDIATE",
                "init_command": f"PRAGMA journal_mode=WAL; PRAGMA synchronous={_sync};",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
USE_I18N = False

# Django 5.2's default hashers: PBKDF2-SHA256 with 1,000,000 iterations first.
# (Argon2 would need argon2-cffi; the default is what a stock simplejwt install uses.)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "UNAUTHENTICATED_USER": None,
}

ALG = _env("PEER_ALG")
if ALG not in ("RS256", "ES256"):
    raise RuntimeError(f"bench peer: PEER_ALG={ALG} is not RS256 or ES256")

SIMPLE_JWT = {
    "ALGORITHM": ALG,
    "SIGNING_KEY": Path(_env("PEER_PRIVATE_KEY")).read_text(),
    "VERIFYING_KEY": Path(_env("PEER_PUBLIC_KEY")).read_text(),
    # Tokens minted before the runs must outlive them (jwtd's runs use 1 h too).
    "ACCESS_TOKEN_LIFETIME": timedelta(hours=1),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=1),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
}
