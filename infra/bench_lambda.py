#!/usr/bin/env python3
"""Lambda package bench: arm64 zip sizes, and for host (x86_64) builds of each function the
cold-start time to the first Runtime API poll and the peak RSS over 100 invocations.

It serves the Lambda Runtime API itself (the same protocol `cargo lambda watch` emulates) on
loopback, starts each function's bootstrap against it, and feeds it 100 events from events/.
The handlers do real work against the local emulators: start them first
(`eval "$(infra/local-aws.sh start)"`), then:

    cargo build --release -p revoke365-intake -p revoke365-discovery -p revoke365-removal -p revoke365-verification
    python3 infra/bench_lambda.py            # after infra/package.sh for the zip sizes

Targets: < 8 MB zipped, < 20 ms init, < 40 MB RSS.
"""
import http.server
import json
import os
import pathlib
import queue
import socketserver
import subprocess
import sys
import threading
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESOURCES = json.loads((ROOT / "infra/resources.json").read_text())
INVOCATIONS = int(os.environ.get("BENCH_INVOCATIONS", "100"))
COLD_STARTS = int(os.environ.get("BENCH_COLD_STARTS", "9"))
FUNCTIONS = {
    "intake": "apigw-get-revocation.json",
    "discovery": "sqs-discover.json",
    "removal": "sqs-remove.json",
    "verification": "sqs-verify.json",
}


class RuntimeApi(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.events = queue.Queue()
        self.responses = queue.Queue()
        self.first_poll = None


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if not self.path.endswith("/runtime/invocation/next"):
            return self.send_error(404)
        if self.server.first_poll is None:
            self.server.first_poll = time.perf_counter()
        body = self.server.events.get()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", str(uuid.uuid4()))
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:000000000000:function:bench")
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        payload = self.rfile.read(length)
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        kind = "error" if "/error" in self.path else "response"
        self.server.responses.put((kind, payload))


def queue_url(name):
    return f"http://127.0.0.1:4566/000000000000/{name}"


def function_env(api):
    env = dict(os.environ)
    q = RESOURCES["queues"]
    env.update({
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "RUST_LOG": "error",
        # The Lambda image keeps its CAs in one bundle; Debian's /etc/ssl/certs also holds a
        # link per certificate, which the TLS stack would scan at init. Read the bundle only.
        "SSL_CERT_FILE": os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"),
        "REVOKE365_DISCOVERY_QUEUE_URL": queue_url(q["discovery"]["name"]),
        "REVOKE365_REMOVAL_QUEUE_URL": queue_url(q["removal"]["name"]),
        "REVOKE365_VERIFICATION_QUEUE_URL": queue_url(q["verification"]["name"]),
    })
    return env


def peak_rss_kib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def start(binary, events):
    """Starts the bootstrap against a fresh Runtime API holding `events`."""
    api = RuntimeApi()
    threading.Thread(target=api.serve_forever, daemon=True).start()
    for event in events:
        api.events.put(event)
    started = time.perf_counter()
    proc = subprocess.Popen([str(binary)], env=function_env(api), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return api, proc, started


def stop(api, proc):
    proc.kill()
    _, stderr = proc.communicate()
    api.shutdown()
    return stderr.decode(errors="replace")


def cold_start_ms(binary):
    """Median time from process start to the first Runtime API poll over COLD_STARTS starts."""
    samples = []
    for _ in range(COLD_STARTS):
        api, proc, started = start(binary, [])
        while api.first_poll is None:
            if proc.poll() is not None:
                sys.exit(f"{binary.name} exited during init: {stop(api, proc)[-2000:]}")
            time.sleep(0.0005)
        samples.append((api.first_poll - started) * 1000)
        stop(api, proc)
    samples.sort()
    return samples[len(samples) // 2]


def peak_rss_mib(binary, event):
    """Peak RSS after INVOCATIONS invocations of one process."""
    api, proc, _ = start(binary, [event] * INVOCATIONS)
    try:
        kinds = [api.responses.get(timeout=30)[0] for _ in range(INVOCATIONS)]
        rss = peak_rss_kib(proc.pid) / 1024
    finally:
        stderr = stop(api, proc)
    if kinds.count("error"):
        sys.exit(f"{binary.name}: {kinds.count('error')} invocations errored: {stderr[-2000:]}")
    return rss


def bench(function, event_file):
    binary = ROOT / "target/release" / f"revoke365-{function}"
    if not binary.exists():
        sys.exit(f"{binary} missing: cargo build --release -p revoke365-{function}")
    event = (ROOT / "events" / event_file).read_bytes()
    return cold_start_ms(binary), peak_rss_mib(binary, event)


def main():
    print(f"{'function':<14}{'arm64 zip':>12}{'init (host)':>14}{'peak RSS':>12}")
    for function, event_file in FUNCTIONS.items():
        zip_path = ROOT / "target/lambda" / f"revoke365-{function}" / "bootstrap.zip"
        size = f"{zip_path.stat().st_size / 1e6:.2f} MB" if zip_path.exists() else "n/a"
        init_ms, rss = bench(function, event_file)
        print(f"{function:<14}{size:>12}{init_ms:>11.1f} ms{rss:>9.1f} MB")
    print(f"init: median of {COLD_STARTS} starts to the first Runtime API poll; RSS: peak over {INVOCATIONS} invocations")
    print("targets: < 8 MB zipped, < 20 ms init, < 40 MB RSS")


if __name__ == "__main__":
    main()
