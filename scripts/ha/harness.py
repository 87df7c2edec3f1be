"""What scripts/test-ha and scripts/test-upgrade share: processes started and stopped by pid,
waiting, HTTP, a real HTTP sink recording every page with its Idempotency-Key, and the load of
PagerDuty Events v2 triggers over several front doors (a refused one is sent again to the next)."""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

AS_ROOT = os.geteuid() == 0
PG_BIN = sorted((f"/usr/lib/postgresql/{v}/bin" for v in os.listdir("/usr/lib/postgresql")),
                key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0)[-1]


def psql(url, sql):
    """One statement through psql; its unaligned output."""
    return subprocess.run([f"{PG_BIN}/psql", url, "-qAtX", "-c", sql], capture_output=True, text=True, timeout=30, check=True).stdout


_next_port = [12000 + int.from_bytes(os.urandom(2), "big") % 6000]


def free_port():
    """A port nobody listens on, from 12000–19999: below Linux's ephemeral range (so no outgoing
    connection takes it before the listener binds it), away from the Swift tests' 20000–32000,
    each handed out once per run."""
    while True:
        port = _next_port[0]
        _next_port[0] = 12000 if port >= 19999 else port + 1
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def http(method, url, body=None, headers=None, timeout=5):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_until(what, condition, timeout, work=""):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if condition():
                return True
        except Exception:
            pass
        time.sleep(0.3)
    raise SystemExit(f"timed out waiting for {what} (logs in {work})")


def team_config(name, sink, routing_key, levels):
    """Klaxon's YAML for a run: one service `name` whose policy has `levels` — (escalation delay
    in seconds, [user names]) each — every user paged at minute zero by a webhook to
    SINK/<lowercased name>, the service unthrottled."""
    users = [user for _, names in levels for user in names]
    lines = ["users:"]
    for user in users:
        lower = user.lower()
        lines += [f"  - name: {user}", f"    email: {lower}@example.com",
                  f'    contact_methods: [{{name: hook, type: webhook, address: "{sink}/{lower}"}}]',
                  "    notification_rules: [{contact_method: hook, start_delay_seconds: 0, urgency: high}]"]
    lines += ["escalation_policies:", f"  - name: {name}", "    levels:"]
    for delay, names in levels:
        targets = ", ".join(f"{{user: {user.lower()}@example.com}}" for user in names)
        lines += [f"      - escalation_delay_seconds: {delay}", f"        targets: [{targets}]"]
    lines += ["services:", f"  - name: {name}", f"    escalation_policy: {name}", "    events_per_minute: 0",
              f"    routing_keys: [{{name: {name.lower()}, key: {routing_key}}}]"]
    return "\n".join(lines) + "\n"


class Processes:
    """Every process a run starts, each in its own session, logging to WORK/NAME.log."""

    def __init__(self, work):
        self.work = work
        self.started = []

    def start(self, name, args, env=None, user=None):
        out = open(os.path.join(self.work, f"{name}.log"), "ab")
        if user and AS_ROOT:
            args = ["runuser", "-u", user, "--"] + args
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.started.append((name, process))
        return process

    def stop_all(self):
        for _, process in reversed(self.started):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for _, process in self.started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


class Sink:
    """A real HTTP sink: every POST recorded as (time, path, Idempotency-Key, incident id), every GET as (time, path)."""

    def __init__(self):
        self.pages = []
        self.gets = []  # (time, path): the canary's watchdog pings
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                with sink.lock:
                    sink.gets.append((time.time(), self.path))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    incident = json.loads(body)["incident"]["id"]
                except Exception:
                    incident = None
                with sink.lock:
                    sink.pages.append((time.time(), self.path.strip("/"), self.headers.get("Idempotency-Key"), incident))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def paged(self):
        with self.lock:
            return {(incident, user) for _, user, _, incident in self.pages}

    def keys(self):
        with self.lock:
            return [key for _, _, key, _ in self.pages]


def generate_protobuf(proto_dir, out):
    """Klaxon's messages for Python (protoc --python_out), importable from `out`."""
    protos = [os.path.relpath(os.path.join(d, f), proto_dir) for d, _, fs in os.walk(proto_dir) for f in fs if f.endswith(".proto")]
    os.makedirs(out, exist_ok=True)
    subprocess.run(["protoc", "-I", proto_dir, f"--python_out={out}"] + protos, check=True)
    if out not in sys.path:
        sys.path.insert(0, out)


class Load:
    """`rate` triggers a second for `seconds` over `doors` — ("http", port): the Events API;
    ("rpc", port): the binary protocol (needs `generate_protobuf` first) — dedup keys PREFIX-N;
    a refused trigger goes again to the next door after 0.2 s, for up to 120 s."""

    def __init__(self, routing_key, doors, rate, seconds, prefix):
        self.routing_key, self.doors, self.rate, self.seconds, self.prefix = routing_key, doors, rate, seconds, prefix
        self.attempts = []  # (time, ok)
        self.accepted = {}  # dedup key → accepted at
        self.lock = threading.Lock()

    def send(self, door, dedup):
        kind, port = door
        try:
            if kind == "rpc":
                return self.send_rpc(port, dedup)
            body = json.dumps({"routing_key": self.routing_key, "event_action": "trigger", "dedup_key": dedup,
                               "payload": {"summary": f"trigger {dedup}", "source": "klaxon-harness", "severity": "critical"}}).encode()
            status, _ = http("POST", f"http://127.0.0.1:{port}/v2/enqueue", body, {"Content-Type": "application/json"}, timeout=5)
            return status == 202
        except Exception:
            return False

    def send_rpc(self, port, dedup):
        """One SendEvent over the binary protocol: a length-prefixed Envelope each way."""
        from klaxon.ingest.v1 import ingest_pb2
        from klaxon.rpc.v1 import rpc_pb2
        event = ingest_pb2.Event(routing_key=self.routing_key, event_action=ingest_pb2.EVENT_ACTION_TRIGGER, dedup_key=dedup)
        event.payload.summary = f"trigger {dedup}"
        event.payload.source = "klaxon-harness"
        event.payload.severity = ingest_pb2.SEVERITY_CRITICAL
        frame = rpc_pb2.Envelope(id=1, method="klaxon.ingest.v1.Ingest/SendEvent", body=event.SerializeToString()).SerializeToString()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(struct.pack(">I", len(frame)) + frame)

            def exactly(n):
                data = b""
                while len(data) < n:
                    chunk = sock.recv(n - len(data))
                    if not chunk:
                        raise EOFError("closed")
                    data += chunk
                return data

            (length,) = struct.unpack(">I", exactly(4))
            reply = rpc_pb2.Envelope()
            reply.ParseFromString(exactly(length))
        return reply.id == 1 and reply.status.code == 0

    def trigger(self, number):
        dedup = f"{self.prefix}-{number}"
        door = number % len(self.doors)
        deadline = time.time() + 120
        while time.time() < deadline:
            ok = self.send(self.doors[door], dedup)
            with self.lock:
                self.attempts.append((time.time(), ok))
                if ok:
                    self.accepted[dedup] = time.time()
            if ok:
                return
            door = (door + 1) % len(self.doors)
            time.sleep(0.2)

    def run(self, on_accepted=None):
        number, begin, threads = 0, time.time(), []
        while time.time() - begin < self.seconds:
            due = begin + number / self.rate
            # Read the clock once: between a check and the sleep it moves (a negative sleep raises).
            wait = due - time.time()
            if wait > 0:
                time.sleep(wait)
            thread = threading.Thread(target=self.trigger, args=(number,), daemon=True)
            thread.start()
            threads.append(thread)
            number += 1
        for thread in threads:
            thread.join()
        return number

    def refused_stretches(self):
        """Maximal intervals in which every attempt was refused: (start, end, attempts)."""
        with self.lock:
            ordered = sorted(self.attempts)
        stretches, start_at, count = [], None, 0
        for at, ok in ordered:
            if not ok:
                if start_at is None:
                    start_at, count = at, 0
                count += 1
            elif start_at is not None:
                stretches.append((start_at, at, count))
                start_at = None
        return stretches
