#!/usr/bin/env python3
"""Instructions per request of jwtd builds, counted by valgrind's callgrind.

    bench/instructions.py BASELINE_BINARY OTHER_BINARY... [--requests N]
    bench/instructions.py BINARY BINARY,postgres://jwtd@127.0.0.1:PORT/DB   (SQLite, then PostgreSQL)
    bench/instructions.py BINARY BINARY,metrics      (metrics_bind unset, then set)

Instruction counts do not depend on what else the machine is doing, so two
builds compare to within a fraction of a percent on a shared, noisy host,
where wrk's requests per second (bench/run.sh) move by several percent from
run to run. Each binary serves from a temporary directory under callgrind
(ES256, one user); a client on one keep-alive connection sends N requests to
/healthz, the JWKS, /api/token/verify/ and /api/me/ (one access token again
and again), and N/5 refreshes, each with the refresh token the one before
returned (rotation and blacklist on; signing and the store's write
included), and the counters are zeroed and dumped around each burst with
callgrind_control. The background tasks' instructions (the key poll) are
measured over an idle window first and taken out in proportion to each
burst's duration. Prints one row per binary and its ratio to the first.
Needs valgrind. Bounded: every request has a timeout; the server is ended
by its PID.
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

ENDPOINTS = ["healthz", "jwks", "verify", "me", "refresh"]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def measure(spec, requests):
    """`spec` is a binary, `BINARY,DATABASE_URL` to serve from that (empty)
    database instead of a SQLite file in the temporary directory, or
    `BINARY,metrics` to serve with `metrics_bind` set."""
    binary, _, option = spec.partition(",")
    database_url = option if option != "metrics" else ""
    work = tempfile.mkdtemp()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWTD_")}
    env.update(
        JWTD_BIND=f"127.0.0.1:{port}",
        JWTD_ALGORITHM="ES256",
        JWTD_ACCESS_TOKEN_LIFETIME="1h",
        RUST_LOG="warn",
    )
    if database_url:
        env["JWTD_DATABASE_URL"] = database_url
    if option == "metrics":
        env["JWTD_METRICS_BIND"] = f"127.0.0.1:{free_port()}"
    subprocess.run(
        [binary, "users", "add", "bench", "--password-stdin"],
        input=b"pw\n", cwd=work, env=env, check=True, capture_output=True,
    )
    dumps = os.path.join(work, "callgrind.out")
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={dumps}", binary, "serve"],
        cwd=work, env=env, stderr=subprocess.DEVNULL,
    )
    try:
        conn = connect(port)

        def send(method, path, body=None, bearer=None):
            headers = {"Content-Type": "application/json"} if body else {}
            if bearer:
                headers["Authorization"] = f"Bearer {bearer}"
            conn.request(method, path, body, headers)
            response = conn.getresponse()
            data = response.read()
            if response.status != 200:
                raise SystemExit(f"{method} {path}: {response.status} {data!r}")
            return data

        login = json.dumps({"username": "bench", "password": "pw"})
        pair = json.loads(send("POST", "/api/token/", login))
        verify = json.dumps({"token": pair["access"]})
        chain = {"refresh": pair["refresh"]}

        def refresh():
            body = json.dumps({"refresh": chain["refresh"]})
            chain["refresh"] = json.loads(send("POST", "/api/token/refresh/", body))["refresh"]

        bursts = {
            "healthz": (lambda: send("GET", "/healthz"), requests),
            "jwks": (lambda: send("GET", "/.well-known/jwks.json"), requests),
            "verify": (lambda: send("POST", "/api/token/verify/", verify), requests),
            "me": (lambda: send("GET", "/api/me/", bearer=pair["access"]), requests),
            "refresh": (refresh, max(requests // 5, 1)),
        }
        for request, _ in bursts.values():
            for _ in range(50):
                request()

        def counted(work_to_do):
            control(server.pid, "-z")
            started = time.monotonic()
            work_to_do()
            control(server.pid, "-d")
            return last_total(work), time.monotonic() - started

        idle, idle_secs = counted(lambda: time.sleep(5))
        per_second = idle / idle_secs
        figures = {}
        for name, (request, count) in bursts.items():
            total, secs = counted(lambda: [request() for _ in range(count)])
            figures[name] = (total - per_second * secs) / count
        return figures
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)


def connect(port):
    deadline = time.monotonic() + 120
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            conn.connect()
            return conn
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("the server did not listen within 120 s")
            time.sleep(0.2)


def control(pid, flag):
    subprocess.run(["callgrind_control", flag, str(pid)], check=True, capture_output=True, timeout=120)


def last_total(work):
    dumps = sorted(
        (os.path.join(work, name) for name in os.listdir(work) if name.startswith("callgrind.out.")),
        key=os.path.getmtime,
    )
    with open(dumps[-1]) as dump:
        for line in dump:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise SystemExit(f"no total in {dumps[-1]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binaries", nargs="+")
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    rows = [(binary, measure(binary, args.requests)) for binary in args.binaries]
    baseline = rows[0][1]
    print("| binary | " + " | ".join(f"{e} instr/req (× first)" for e in ENDPOINTS) + " |")
    print("|---|" + "---|" * len(ENDPOINTS))
    for spec, figures in rows:
        binary, _, option = spec.partition(",")
        label = binary + {"": "", "metrics": " with metrics_bind"}.get(option, " on PostgreSQL")
        cells = [f"{figures[e]:,.0f} ({figures[e] / baseline[e]:.3f})" for e in ENDPOINTS]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
