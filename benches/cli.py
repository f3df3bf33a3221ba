#!/usr/bin/env python3
"""Whole-process cost of one-shot `ralio` commands against the release sandbox.

Each command runs as its own process, as scripts, cron jobs and agent tool calls run it:
CPU (user + system, from the kernel's accounting of the finished child) and wall time, the
median of RUNS runs after one warm-up, beside `curl` of the same URL (a process that only
does the HTTP request: the floor of a one-shot command).

Usage (what `just bench-cli` runs):
  cargo build --release -p ralio-sandbox -p ralio-cli
  python3 benches/cli.py [--runs N] [--target-dir DIR]
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def run_once(cmd, env):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu * 1000, wall * 1000


def measure(label, cmd, env, runs):
    run_once(cmd, env)  # warm-up: page cache, the sandbox's first request
    cpus, walls = [], []
    for _ in range(runs):
        cpu, wall = run_once(cmd, env)
        cpus.append(cpu)
        walls.append(wall)
    print(
        f"  {label:<34} cpu {statistics.median(cpus):6.1f} ms "
        f"(min {min(cpus):5.1f}, max {max(cpus):5.1f})   wall {statistics.median(walls):6.1f} ms"
    )
    return statistics.median(cpus)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", "target"))
    args = parser.parse_args()
    release = os.path.join(args.target_dir, "release")
    ralio = os.path.join(release, "ralio")
    sandbox_bin = os.path.join(release, "ralio-sandbox")
    for binary in (ralio, sandbox_bin):
        if not os.access(binary, os.X_OK):
            sys.exit(f"{binary} not found: cargo build --release -p ralio-sandbox -p ralio-cli")
    curl = shutil.which("curl")
    if curl is None:
        sys.exit("curl is not installed (apt-get install curl)")

    sandbox = subprocess.Popen(
        [sandbox_bin, "--addr", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    config_dir = tempfile.mkdtemp(prefix="ralio-bench-cli-")
    try:
        started = json.loads(sandbox.stdout.readline())
        base_url = started["base_url"]
        env = dict(os.environ)
        for name in list(env):
            if name.startswith("RALIO_") or name == "RUST_LOG":
                del env[name]
        env.update({"RALIO_API_URL": base_url, "RALIO_CONFIG_DIR": config_dir, "NO_COLOR": "1"})
        register_env = dict(env, RALIO_REGISTRATION_TICKET=started["ticket"])
        run_once([ralio, "register"], register_env)

        print(f"one-shot commands, whole process, median of {args.runs} (release builds, {base_url})")
        floor = measure("curl GET /v1/transactions", [curl, "-s", "-o", "/dev/null", f"{base_url}/v1/transactions"], env, args.runs)
        whoami = measure("ralio whoami", [ralio, "whoami"], env, args.runs)
        txs = measure("ralio transactions --json", [ralio, "transactions", "--json"], env, args.runs)
        chat = measure("ralio chat … --no-stream", [ralio, "chat", "What is my current balance?", "--no-stream"], env, args.runs)
        print(f"  transactions / curl: {txs / floor:.1f}×   whoami {whoami:.1f} ms   chat {chat:.1f} ms")
    finally:
        sandbox.kill()
        sandbox.wait()
        shutil.rmtree(config_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
