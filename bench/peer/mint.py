"""Prepares the peer's database for bench/peer/run.sh (run with .venv/bin/python, PEER_* env set).

  mint.py --user bench --out DIR --refresh 15000,15000 < password

Migrates a fresh database, creates the user (one PBKDF2 hash, as `createsuperuser`
would), times Django's default password hasher, and mints refresh tokens straight
through simplejwt's RefreshToken.for_user, which records each one as an
OutstandingToken exactly as a login does, without the login's password hash.
Writes DIR/access.txt (one access token), DIR/probe.txt (one refresh token, for the
rotation check) and DIR/refresh_<i>.txt (one token a line, one file per count). Prints tab-separated facts on stdout: hasher, ms per hash.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peersite.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.hashers import get_hasher, make_password  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from rest_framework_simplejwt.tokens import RefreshToken  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--user", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--refresh", default="", help="comma-separated token counts, one file each")
    a = ap.parse_args()
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        sys.exit("mint.py: no password on stdin")

    call_command("migrate", verbosity=0, interactive=False)
    users = get_user_model()
    user = users.objects.filter(username=a.user).first()
    if user is None:
        user = users.objects.create_user(a.user, password=password)

    # The hasher a login pays for (best of 3).
    hasher = get_hasher()
    cost = min(_timed(make_password, password) for _ in range(3))

    with open(os.path.join(a.out, "access.txt"), "w") as f:
        f.write(str(RefreshToken.for_user(user).access_token) + "\n")
    with open(os.path.join(a.out, "probe.txt"), "w") as f:
        f.write(str(RefreshToken.for_user(user)) + "\n")
    counts = [int(n) for n in a.refresh.split(",") if n]
    for i, n in enumerate(counts):
        t0 = time.perf_counter()
        with transaction.atomic(), open(os.path.join(a.out, f"refresh_{i}.txt"), "w") as f:
            for _ in range(n):
                f.write(str(RefreshToken.for_user(user)) + "\n")
        print(f"mint.py: {n} refresh tokens in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    iterations = getattr(hasher, "iterations", "")
    print(f"{hasher.algorithm}\t{iterations}\t{cost * 1000:.0f}")


def _timed(fn, *args):
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
