#!/usr/bin/env python3
"""A rolling upgrade, old and new binaries side by side (issue 26, point 5), run by
scripts/test-upgrade.

The previous release runs alone on its schema and pages; the new release's `klaxon migrate`
runs while it does (expand only); then the new release's three services start beside the old
ones, wired across versions (new Ingest → old Assignment → new Notifier, and old Ingest → new
Assignment → old Notifier, as a load balancer spanning both would), and for a minute triggers go
through both Ingests and acknowledgements through both Assignments (each release's own CLI);
last the old services stop (SIGTERM) and the new ones carry on alone. It asserts: every accepted
trigger is an incident, every incident paged both users (0 lost), every acknowledgement took,
and the old binaries stayed ready on the newer schema.

Usage: test_upgrade.py OLD_KLAXON NEW_KLAXON WORK_DIR DATABASE_URL   (KLAXON_UPGRADE_SECONDS=60)
"""
import os
import random
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Load, Processes, Sink, free_port, http, log, team_config  # noqa: E402
from harness import psql as harness_psql  # noqa: E402
from harness import wait_until as wait  # noqa: E402

OLD, NEW, WORK, DATABASE_URL = sys.argv[1:5]
SECONDS = int(os.environ.get("KLAXON_UPGRADE_SECONDS", "60"))
RATE = 20
ROUTING_KEY = "up0123456789abcdefghijklmnopqrst"
TOKEN = "klx_upgrade-test-bootstrap-token-0123456789"
processes = Processes(WORK)
ports = {version: {part: {"rpc": free_port(), "http": free_port()} for part in ("ingest", "assignment", "notifier")}
         for version in ("old", "new")}
running = {}


def wait_until(what, condition, timeout):
    return wait(what, condition, timeout, WORK)


def serve(version, part, assignment, notifier):
    """`klaxon serve PART` of one release, reaching Assignment and Notifier where told."""
    binary = OLD if version == "old" else NEW
    own = ports[version]
    env = {
        **os.environ, "KLAXON_DATABASE_URL": DATABASE_URL, "KLAXON_BOOTSTRAP_TOKEN": TOKEN, "KLAXON_LOG_LEVEL": "warning",
        "KLAXON_INGEST_LISTEN": f"127.0.0.1:{own['ingest']['rpc']}", "KLAXON_INGEST_HTTP_LISTEN": f"127.0.0.1:{own['ingest']['http']}",
        "KLAXON_ASSIGNMENT_LISTEN": f"127.0.0.1:{own['assignment']['rpc']}",
        "KLAXON_ASSIGNMENT_HTTP_LISTEN": f"127.0.0.1:{own['assignment']['http']}",
        "KLAXON_NOTIFIER_LISTEN": f"127.0.0.1:{own['notifier']['rpc']}", "KLAXON_NOTIFIER_HTTP_LISTEN": f"127.0.0.1:{own['notifier']['http']}",
        "KLAXON_ASSIGNMENT_ADDRESS": f"127.0.0.1:{ports[assignment]['assignment']['rpc']}",
        "KLAXON_NOTIFIER_ADDRESS": f"127.0.0.1:{ports[notifier]['notifier']['rpc']}",
    }
    # --skip-migrations is not a flag: serve applies its own pending migrations (none here: the
    # new release migrated first, and the old one's are a subset).
    running[(version, part)] = processes.start(f"{part}-{version}-{len(processes.started)}", [binary, "serve", part], env=env)
    port = own[part]["http"]
    wait_until(f"{part} ({version}) ready", lambda: http("GET", f"http://127.0.0.1:{port}/readyz")[0] == 200, 60)


def stop(version, part):
    process = running.pop((version, part))
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def cli(version, *args):
    binary = OLD if version == "old" else NEW
    return subprocess.run(
        [binary, *args, "--address", f"127.0.0.1:{ports[version]['assignment']['rpc']}", "--token", TOKEN],
        capture_output=True, text=True, timeout=30)


def psql(sql):
    return harness_psql(DATABASE_URL, sql)


def main():
    sink = Sink()
    # The previous release alone, on its own schema.
    subprocess.run([OLD, "migrate"], env={**os.environ, "KLAXON_DATABASE_URL": DATABASE_URL}, check=True, capture_output=True)
    for part in ("notifier", "assignment", "ingest"):
        serve("old", part, "old", "old")
    config = os.path.join(WORK, "upgrade.yaml")
    with open(config, "w") as f:
        f.write(team_config("Upgrade", sink.url, ROUTING_KEY, [(1800, ["Alice", "Bob"])]))
    applied = cli("old", "apply", "-f", config)
    assert applied.returncode == 0, applied.stderr
    alice = psql("SELECT id FROM users WHERE email = 'alice@example.com'").strip()
    before = Load(ROUTING_KEY, [("http", ports["old"]["ingest"]["http"])], RATE, 10, "old-alone")
    before.run()
    log(f"the previous release alone: {len(before.accepted)} triggers accepted")

    # The new release's migrations while the old one runs; the old one stays ready.
    migrated = subprocess.run([NEW, "migrate"], env={**os.environ, "KLAXON_DATABASE_URL": DATABASE_URL}, capture_output=True, text=True)
    assert migrated.returncode == 0, migrated.stderr
    log(f"new release's migrations applied beside the old one: {migrated.stdout.strip()[-200:]}")
    for part in ("ingest", "assignment", "notifier"):
        status = http("GET", f"http://127.0.0.1:{ports['old'][part]['http']}/readyz")[0]
        assert status == 200, f"the old {part} is not ready on the newer schema ({status})"

    # Side by side, wired across versions; old Ingest and Assignment restarted behind the "load
    # balancer" that now reaches the new ones.
    serve("new", "notifier", "new", "new")
    serve("new", "assignment", "new", "old")   # new Assignment → old Notifier
    serve("new", "ingest", "old", "new")       # new Ingest → old Assignment
    stop("old", "ingest")
    serve("old", "ingest", "new", "old")       # old Ingest → new Assignment
    stop("old", "assignment")
    serve("old", "assignment", "old", "new")   # old Assignment → new Notifier
    log("old and new side by side, wired across versions")

    acks = {}  # incident id → the release whose Assignment acknowledged it
    stop_acks = threading.Event()

    def acknowledge():
        turn = 0
        while not stop_acks.is_set():
            time.sleep(1)
            keys = list(side_by_side.accepted)
            if not keys:
                continue
            dedup = random.choice(keys)
            incident = psql(f"SELECT id FROM incidents WHERE dedup_key = '{dedup}'").strip()
            if not incident or int(incident) in acks:
                continue
            version = ("old", "new")[turn % 2]
            turn += 1
            result = cli(version, "incident", "ack", incident, "--user", alice)
            if result.returncode == 0:
                acks[int(incident)] = version
            else:
                log(f"ack of {incident} through the {version} Assignment failed: {result.stderr.strip()}")
                acks[int(incident)] = f"failed ({version})"

    side_by_side = Load(
        ROUTING_KEY, [("http", ports["old"]["ingest"]["http"]), ("http", ports["new"]["ingest"]["http"])], RATE, SECONDS, "side-by-side")
    acker = threading.Thread(target=acknowledge, daemon=True)
    acker.start()
    side_by_side.run()
    stop_acks.set()
    acker.join()
    log(f"side by side for {SECONDS} s: {len(side_by_side.accepted)} triggers accepted, {len(acks)} acknowledgements")

    # The old release leaves (SIGTERM, as a rolling update does); the new one carries on alone.
    for part in ("ingest", "assignment", "notifier"):
        stop("old", part)
    after = Load(ROUTING_KEY, [("http", ports["new"]["ingest"]["http"])], RATE, 10, "new-alone")
    after.run()
    log(f"the new release alone: {len(after.accepted)} triggers accepted")

    accepted = {**before.accepted, **side_by_side.accepted, **after.accepted}
    incidents = {}

    def all_paged():
        rows = psql("SELECT dedup_key || ' ' || id FROM incidents").split()
        incidents.update(zip(rows[0::2], (int(x) for x in rows[1::2])))
        wanted = {(incidents.get(d), u) for d in accepted for u in ("alice", "bob")}
        return None not in {i for i, _ in wanted} and wanted <= sink.paged()

    try:
        wait_until("every accepted trigger's two pages", all_paged, 90)
    except SystemExit:
        pass
    got = sink.paged()
    missing = [d for d in accepted if d not in incidents]
    lost = [(d, u) for d in accepted if d in incidents for u in ("alice", "bob") if (incidents[d], u) not in got]
    keys = sink.keys()
    duplicates = len(keys) - len(set(keys))
    acked_ok = [i for i, v in acks.items() if not v.startswith("failed")]
    not_acked = []
    if acked_ok:
        states = psql(f"SELECT id || ' ' || status FROM incidents WHERE id IN ({','.join(map(str, acked_ok))})").split()
        not_acked = [int(i) for i, s in zip(states[0::2], states[1::2]) if s != "acknowledged"]
    failed_acks = [i for i, v in acks.items() if v.startswith("failed")]
    print()
    print(f"test-upgrade: {len(accepted)} triggers accepted ({len(before.accepted)} old alone, {len(side_by_side.accepted)} side by side, "
          f"{len(after.accepted)} new alone)")
    print(f"test-upgrade: incidents missing: {len(missing)}; pages lost: {len(lost)} of {2 * len(accepted)}; "
          f"sent twice: {duplicates}")
    print(f"test-upgrade: acknowledgements: {len(acked_ok)} took ({sum(1 for v in acks.values() if v == 'old')} through the old "
          f"Assignment, {sum(1 for v in acks.values() if v == 'new')} through the new), {len(failed_acks)} failed, "
          f"{len(not_acked)} not acknowledged after")
    failures = []
    if missing:
        failures.append(f"{len(missing)} accepted triggers are not incidents: {missing[:5]}")
    if lost:
        failures.append(f"{len(lost)} pages lost: {lost[:5]}")
    if failed_acks or not_acked:
        failures.append(f"acknowledgements failed {failed_acks[:5]} or did not take {not_acked[:5]}")
    if not acked_ok:
        failures.append("no acknowledgement was tried")
    if failures:
        for failure in failures:
            print(f"test-upgrade: FAILED: {failure}")
        raise SystemExit(1)
    print("test-upgrade: passed")


try:
    main()
finally:
    processes.stop_all()
