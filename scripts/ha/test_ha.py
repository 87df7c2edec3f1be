#!/usr/bin/env python3
"""Klaxon against what a real outage does (issue 26, point 3), run by scripts/test-ha.

etcd, three Patroni-managed PostgreSQL nodes (synchronous_mode), two replicas of each Klaxon
service, a real HTTP sink; a steady stream of triggers over both front doors (PagerDuty Events
v2 over HTTP, and the binary protocol) of both Ingest replicas, two users paged per incident. During it: kill -9 the primary's
postmaster, later `patronictl switchover`, later kill -9 one Klaxon replica of each service.
Then it prints and asserts: every trigger that got a success reply is an incident, every incident
paged both users (0 lost), pages sent twice (each with its idempotency key, at most 1 %), the
longest stretch during which triggers were refused around each disruption, and that no timer
fired twice. Every process is started here and stopped here, by pid; all on loopback ports.

Usage: test_ha.py KLAXON_BINARY WORK_DIR   (KLAXON_HA_SECONDS, KLAXON_HA_RATE tune the load)
"""
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import AS_ROOT, PG_BIN, Load, Processes, Sink, free_port, generate_protobuf, http, log, team_config  # noqa: E402
from harness import psql as harness_psql  # noqa: E402
from harness import wait_until as wait  # noqa: E402

KLAXON, WORK = sys.argv[1], sys.argv[2]
SECONDS = int(os.environ.get("KLAXON_HA_SECONDS", "180"))
RATE = int(os.environ.get("KLAXON_HA_RATE", "50"))
ROUTING_KEY = "ha0123456789abcdefghijklmnopqrst"  # 32 characters
TOKEN = "klx_ha-test-bootstrap-token-0123456789abcdef"
processes = Processes(WORK)
start = processes.start


def wait_until(what, condition, timeout):
    return wait(what, condition, timeout, WORK)


def stop_all():
    processes.stop_all()
    # Postmasters outlive a killed Patroni: stop them by their pid files.
    for node in nodes:
        try:
            os.kill(int(open(os.path.join(node["dir"], "data", "postmaster.pid")).readline()), signal.SIGKILL)
        except (OSError, ValueError):
            pass


# ---------------------------------------------------------------------------------------------
# etcd and Patroni

etcd_client, etcd_peer = free_port(), free_port()
nodes = [{"name": f"pg{i}", "pg": free_port(), "rest": free_port(), "dir": os.path.join(WORK, f"pg{i}")} for i in (1, 2, 3)]
multi_host = ",".join(f"127.0.0.1:{n['pg']}" for n in nodes)
DATABASE_URL = f"postgresql://klaxon@{multi_host}/klaxon?target_session_attrs=read-write&connect_timeout=3"
ADMIN_URL = f"postgresql://postgres@{multi_host}/postgres?target_session_attrs=read-write&connect_timeout=3"

PATRONI = """scope: klaxon-ha
name: {name}
restapi:
  listen: 127.0.0.1:{rest}
  connect_address: 127.0.0.1:{rest}
etcd3:
  hosts: 127.0.0.1:{etcd}
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 4
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      parameters:
        max_connections: 200
        synchronous_commit: "on"
        wal_log_hints: "on"
        max_wal_senders: 10
        max_replication_slots: 10
  initdb:
    - encoding: UTF8
    - locale: C
  pg_hba:
    - host replication replicator 127.0.0.1/32 trust
    - host all all 127.0.0.1/32 trust
    - local all all trust
postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg}
  data_dir: {dir}/data
  bin_dir: {bin}
  pgpass: {dir}/pgpass
  authentication:
    superuser:
      username: postgres
      password: postgres
    replication:
      username: replicator
      password: replicator
  parameters:
    unix_socket_directories: {dir}
"""


def psql(sql, url=ADMIN_URL):
    return harness_psql(url, sql)


def leader():
    """The member holding the leader key (Patroni's REST API: GET /primary is 200 on it)."""
    for node in nodes:
        try:
            status, _ = http("GET", f"http://127.0.0.1:{node['rest']}/primary", timeout=2)
            if status == 200:
                return node
        except Exception:
            pass
    return None


def sync_standby():
    for node in nodes:
        try:
            if http("GET", f"http://127.0.0.1:{node['rest']}/sync", timeout=2)[0] == 200:
                return node
        except Exception:
            pass
    return None


def start_cluster():
    os.makedirs(os.path.join(WORK, "etcd"), exist_ok=True)
    start("etcd", ["etcd", "--name", "ha", "--data-dir", os.path.join(WORK, "etcd"),
                   "--listen-client-urls", f"http://127.0.0.1:{etcd_client}", "--advertise-client-urls", f"http://127.0.0.1:{etcd_client}",
                   "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
                   "--initial-cluster", f"ha=http://127.0.0.1:{etcd_peer}"])
    wait_until("etcd", lambda: http("GET", f"http://127.0.0.1:{etcd_client}/health")[0] == 200, 30)
    for node in nodes:
        os.makedirs(node["dir"], mode=0o700, exist_ok=True)
        path = os.path.join(node["dir"], "patroni.yml")
        with open(path, "w") as f:
            f.write(PATRONI.format(etcd=etcd_client, bin=PG_BIN, **node))
        if AS_ROOT:
            subprocess.run(["chown", "-R", "postgres", node["dir"]], check=True)
        start(node["name"], ["patroni", path], user="postgres")
    wait_until("a Patroni leader", lambda: leader() is not None, 90)
    wait_until("a synchronous standby", lambda: "sync" in psql("SELECT string_agg(sync_state, ',') FROM pg_stat_replication"), 90)
    psql("CREATE ROLE klaxon LOGIN SUPERUSER")
    psql("CREATE DATABASE klaxon OWNER klaxon")
    log(f"Patroni cluster up: leader {leader()['name']}, nodes on {multi_host}")


# ---------------------------------------------------------------------------------------------
# Klaxon: two replicas of each service

replicas = {}


# Above the takeover path: with Ingest A's Assignment and Notifier A killed, a round trip from
# Ingest B goes through two takeovers (Assignment takes Ingest's rows, Notifier Assignment's, each
# after 5 s) and takes ~10 s — a 5 s canary would rightly call that stalled.
CANARY_SECONDS = 15


def start_klaxon(watchdog_url):
    subprocess.run([KLAXON, "migrate"], env={**os.environ, "KLAXON_DATABASE_URL": DATABASE_URL}, check=True,
                   stdout=open(os.path.join(WORK, "migrate.log"), "w"), stderr=subprocess.STDOUT)
    for side in ("a", "b"):
        replicas[side] = {part: {"rpc": free_port(), "http": free_port()} for part in ("ingest", "assignment", "notifier")}
    for side in ("a", "b"):
        ports = replicas[side]
        env = {
            **os.environ, "KLAXON_DATABASE_URL": DATABASE_URL, "KLAXON_BOOTSTRAP_TOKEN": TOKEN, "KLAXON_LOG_LEVEL": "warning",
            "KLAXON_ALLOW_LINK_LOCAL_DESTINATIONS": "false",
            # The pager watches itself through the outage: a round trip every 15 s, each pinging the sink.
            "KLAXON_CANARY_INTERVAL_SECONDS": str(CANARY_SECONDS), "KLAXON_WATCHDOG_URL": watchdog_url,
            "KLAXON_INGEST_LISTEN": f"127.0.0.1:{ports['ingest']['rpc']}", "KLAXON_INGEST_HTTP_LISTEN": f"127.0.0.1:{ports['ingest']['http']}",
            "KLAXON_ASSIGNMENT_LISTEN": f"127.0.0.1:{ports['assignment']['rpc']}",
            "KLAXON_ASSIGNMENT_HTTP_LISTEN": f"127.0.0.1:{ports['assignment']['http']}",
            "KLAXON_NOTIFIER_LISTEN": f"127.0.0.1:{ports['notifier']['rpc']}", "KLAXON_NOTIFIER_HTTP_LISTEN": f"127.0.0.1:{ports['notifier']['http']}",
        }
        for part in ("notifier", "assignment", "ingest"):
            process = start(f"{part}-{side}", [KLAXON, "serve", part], env=env)
            ports[part]["process"] = process
    for side in ("a", "b"):
        for part in ("ingest", "assignment", "notifier"):
            port = replicas[side][part]["http"]
            try:
                wait_until(f"{part}-{side} ready", lambda: http("GET", f"http://127.0.0.1:{port}/readyz")[0] == 200, 60)
            except SystemExit:
                try:
                    status, body = http("GET", f"http://127.0.0.1:{port}/readyz")
                except Exception as error:
                    status, body = 0, str(error).encode()
                tail = open(os.path.join(WORK, f"{part}-{side}.log"), errors="replace").read()[-3000:]
                raise SystemExit(f"test-ha: {part}-{side} not ready after 60 s: /readyz {status} {body[:300]!r}\n{tail}")
    log("six Klaxon processes ready")


# ---------------------------------------------------------------------------------------------


def longest_after(stretches, at, within=60):
    relevant = [end - start for start, end, _ in stretches if at - 1 <= start <= at + within]
    return max(relevant, default=0.0)


# ---------------------------------------------------------------------------------------------


def main():
    os.makedirs(WORK, exist_ok=True)
    start_cluster()
    sink = Sink()
    sink_url = sink.url
    start_klaxon(f"{sink_url}/watchdog")
    config_file = os.path.join(WORK, "ha.yaml")
    with open(config_file, "w") as f:
        f.write(team_config("HA", sink_url, ROUTING_KEY, [(30, ["Alice", "Bob"]), (60, ["Carol"])]))
    subprocess.run([KLAXON, "apply", "-f", config_file, "--address", f"127.0.0.1:{replicas['a']['assignment']['rpc']}", "--token", TOKEN],
                   check=True, stdout=subprocess.DEVNULL)

    disruptions = {}

    disrupt_errors = []

    def disrupt():
        try:
            disruption_sequence()
        except BaseException as error:  # a thread's SystemExit too
            disrupt_errors.append(f"{error}")
            log(f"disruption failed: {error}")

    def disruption_sequence():
        time.sleep(SECONDS * 0.25)
        primary = leader()
        pid = int(open(os.path.join(primary["dir"], "data", "postmaster.pid")).readline())
        disruptions["kill -9 primary"] = time.time()
        os.kill(pid, signal.SIGKILL)
        log(f"killed -9 the primary's postmaster ({primary['name']}, pid {pid})")
        time.sleep(SECONDS * 0.25)
        wait_until("a leader again", lambda: leader() is not None, 60)
        before = leader()
        # With synchronous_mode the candidate is the synchronous standby (REST API: GET /sync is
        # 200 on it). Patroni refuses a switchover to a standby still catching up after the
        # crash: tried again (a few times, 10 s apart) until the leader moves.
        for attempt in range(1, 7):
            wait_until("a synchronous standby", lambda: sync_standby() is not None, 60)
            candidate = sync_standby()
            disruptions.setdefault("switchover", time.time())
            out = subprocess.run(
                ["patronictl", "-c", os.path.join(nodes[0]["dir"], "patroni.yml"), "switchover", "klaxon-ha",
                 "--leader", before["name"], "--candidate", candidate["name"], "--force"], capture_output=True, text=True)
            log(f"patronictl switchover to {candidate['name']} (try {attempt}): {' '.join((out.stdout + out.stderr).split())[-160:]}")
            try:
                wait_until("the switchover", lambda: leader() is not None and leader() is not before, 10)
                break
            except SystemExit:
                disruptions.pop("switchover")
        else:
            raise SystemExit("the switchover never happened")
        log(f"switchover {before['name']} → {leader()['name']}")
        time.sleep(SECONDS * 0.25)
        disruptions["kill -9 a replica of each service"] = time.time()
        for side, part in (("a", "ingest"), ("b", "assignment"), ("a", "notifier")):
            os.killpg(replicas[side][part]["process"].pid, signal.SIGKILL)
        log("killed -9 ingest-a, assignment-b and notifier-a")

    # /readyz of a replica that is never killed: 503 while no primary is reachable, 200 after.
    readiness = []  # (time, status)
    watching = threading.Event()

    def watch_readiness():
        port = replicas["b"]["ingest"]["http"]
        while not watching.is_set():
            try:
                status, _ = http("GET", f"http://127.0.0.1:{port}/readyz", timeout=2)
            except Exception:
                status = 0
            readiness.append((time.time(), status))
            time.sleep(0.25)

    threading.Thread(target=watch_readiness, daemon=True).start()
    disruptor = threading.Thread(target=disrupt, daemon=True)
    log(f"load: {RATE} triggers/s for {SECONDS} s over both front doors (HTTP and the binary protocol) of both Ingests")
    began = time.time()
    disruptor.start()
    # Both front doors of both Ingests: the Events API over HTTP and the binary protocol.
    generate_protobuf(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto"), os.path.join(WORK, "py"))
    doors = [("http", replicas["a"]["ingest"]["http"]), ("rpc", replicas["b"]["ingest"]["rpc"]),
             ("rpc", replicas["a"]["ingest"]["rpc"]), ("http", replicas["b"]["ingest"]["http"])]
    load = Load(ROUTING_KEY, doors, RATE, SECONDS, "ha")
    accepted, attempts = load.accepted, load.attempts
    sent = load.run()
    disruptor.join()
    log(f"load done: {sent} triggers, {len(accepted)} accepted, after {time.time() - began:.0f} s")

    # Every accepted trigger is an incident; every incident pages Alice and Bob.
    def incident_ids():
        rows = psql("SELECT dedup_key || ' ' || id FROM incidents", DATABASE_URL.replace("klaxon@", "klaxon@", 1)).split()
        return dict(zip(rows[0::2], (int(x) for x in rows[1::2])))

    def paged():
        return sink.paged()

    incidents = {}

    def all_paged():
        incidents.update(incident_ids())
        wanted = {(incidents.get(d), u) for d in accepted for u in ("alice", "bob")}
        return None not in {i for i, _ in wanted} and wanted <= paged()

    try:
        wait_until("every accepted trigger's two pages", all_paged, 180)
    except SystemExit:
        pass
    incidents.update(incident_ids())
    missing_incidents = [d for d in accepted if d not in incidents]
    got = paged()
    lost = [(d, u) for d in accepted if d in incidents for u in ("alice", "bob") if (incidents[d], u) not in got]
    keys = sink.keys()
    duplicates = len(keys) - len(set(keys))
    fired_twice = int(psql(
        "SELECT count(*) FROM (SELECT incident_id FROM timeline_entries WHERE type = 'escalate' GROUP BY incident_id HAVING count(*) > 1) t",
        DATABASE_URL) or 0)
    escalated = int(psql("SELECT count(DISTINCT incident_id) FROM timeline_entries WHERE type = 'escalate'", DATABASE_URL) or 0)
    watching.set()
    # No process needed a restart: every survivor is ready.
    survivors = [(side, part) for side in ("a", "b") for part in ("ingest", "assignment", "notifier")
                 if replicas[side][part]["process"].poll() is None]
    unready = [f"{part}-{side}" for side, part in survivors
               if http("GET", f"http://127.0.0.1:{replicas[side][part]['http']}/readyz")[0] != 200]
    killed_at = disruptions.get("kill -9 primary", 0)
    not_ready = [at for at, status in readiness if status != 200 and killed_at <= at <= killed_at + 60]
    stretches = load.refused_stretches()
    windows = {name: longest_after(stretches, at) for name, at in disruptions.items()}
    refused = sum(1 for _, ok in attempts if not ok)
    # The canary's watchdog pings: the longest silence, and that they came back after the last disruption.
    with sink.lock:
        pings = [at for at, path in sink.gets if path == "/watchdog"]
    silences = [(b - a, a) for a, b in zip(pings, pings[1:]) if a >= began]
    silence, silence_from = max(silences, default=(0.0, began))
    last_disruption = max(disruptions.values(), default=began)
    pings_after = [at for at in pings if at > last_disruption + 1]

    print()
    print(f"test-ha: {len(accepted)} triggers accepted of {sent} sent ({refused} refused attempts, each sent again)")
    print(f"test-ha: incidents missing for accepted triggers: {len(missing_incidents)}")
    print(f"test-ha: pages lost (incident × Alice/Bob): {len(lost)} of {2 * len(accepted)}")
    print(f"test-ha: pages received: {len(keys)}; sent twice (same Idempotency-Key): {duplicates} ({100.0 * duplicates / max(len(keys), 1):.2f} %)")
    if duplicates:
        # When each page came the second time, beside the disruptions: which one caused them.
        first, repeats = {}, []
        with sink.lock:
            for at, _, key, _ in sink.pages:
                if key in first:
                    repeats.append((first[key] - began, at - began))
                else:
                    first[key] = at
        marks = ", ".join(f"{name} {at - began:.1f}" for name, at in sorted(disruptions.items(), key=lambda item: item[1]))
        print(f"test-ha: sent twice, seconds into the load (first → again): "
              f"{', '.join(f'{a:.1f}→{b:.1f}' for a, b in repeats[:10])}{' …' if len(repeats) > 10 else ''} (disruptions: {marks})")
    print(f"test-ha: escalations: {escalated} incidents escalated, {fired_twice} escalated twice")
    for name, seconds in windows.items():
        print(f"test-ha: longest stretch of refused triggers after {name}: {seconds:.1f} s")
    print(f"test-ha: ingest-b /readyz after kill -9 primary: not 200 for {len(not_ready) * 0.25:.1f} s (sampled every 0.25 s), "
          f"then 200; survivors ready at the end without a restart: {len(survivors) - len(unready)} of {len(survivors)}")
    print(f"test-ha: canary every {CANARY_SECONDS} s: {len(pings)} watchdog pings; longest silence {silence:.1f} s "
          f"(from {silence_from - began:.0f} s into the load); {len(pings_after)} after the last disruption")
    failures = []
    if not pings_after:
        failures.append("the canary's watchdog pings did not resume after the last disruption")
    if missing_incidents:
        failures.append(f"{len(missing_incidents)} accepted triggers are not incidents: {missing_incidents[:5]}")
    if lost:
        failures.append(f"{len(lost)} pages lost: {lost[:5]}")
    if duplicates > 0.01 * max(len(keys), 1):
        failures.append(f"{duplicates} duplicate pages (more than 1 %)")
    if fired_twice:
        failures.append(f"{fired_twice} incidents escalated twice")
    goals = {"kill -9 primary": 15.0, "switchover": 3.0}
    for name, goal in goals.items():
        if windows.get(name, 0) > goal:
            failures.append(f"triggers refused for {windows[name]:.1f} s after {name} (goal ≤ {goal:.0f} s)")
    failures += [f"a disruption did not happen: {error}" for error in disrupt_errors]
    if unready:
        failures.append(f"not ready at the end: {unready}")
    if len(survivors) != 3:
        failures.append(f"expected 3 surviving Klaxon processes, found {len(survivors)}: one exited by itself")
    if len(disruptions) < 3:
        failures.append(f"only {list(disruptions)} happened")
    if failures:
        for failure in failures:
            print(f"test-ha: FAILED: {failure}")
        raise SystemExit(1)
    print("test-ha: passed")


try:
    main()
finally:
    stop_all()
