"""The README's first command, `python3 dev.py up`, runs the whole system and its curl works."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from lifecycle_devstack.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def _four_free_ports() -> int:
    for base in range(21000, 60000, 97):
        try:
            sockets = [socket.create_server(("127.0.0.1", base + i)) for i in range(4)]
        except OSError:
            continue
        for sock in sockets:
            sock.close()
        return base
    raise RuntimeError("no four consecutive free ports")


def test_up_prints_a_working_curl_and_stops_cleanly_on_ctrl_c(tmp_path):
    first = _four_free_ports()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFECYCLE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "lifecycle_devstack", "up", "--data-dir", str(tmp_path / "data"),
         "--postgres-port", str(free_port()), "--kafka-port", str(free_port()), "--smtp-port", str(free_port()),
         "--first-port", str(first)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    printed = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("Ctrl-C stops everything" in line for line in printed):
            line = process.stdout.readline()
            assert line or process.poll() is None, "".join(printed)
            printed.append(line)
        output = "".join(printed)
        key = re.search(r"Demo write key: (lc_wk_\S+)", output).group(1)
        token = re.search(r"Read API token: (\S+)", output).group(1)
        assert f"Bearer {token}' http://127.0.0.1:{first + 1}/v1/customers/visitor-1" in output  # the printed curl
        body = re.search(r"-d '(\{.*\})'", output).group(1)
        response = httpx.post(f"http://127.0.0.1:{first}/v1/track", content=body, auth=(key, ""),
                              headers={"content-type": "application/json"})
        assert response.status_code == 200, response.text
        profile = None
        for _ in range(100):
            profile = httpx.get(f"http://127.0.0.1:{first + 1}/v1/customers/visitor-1",
                                headers={"authorization": f"Bearer {token}"}).json()
            if profile.get("stage") == "consideration":
                break
            time.sleep(0.2)
        assert profile["stage"] == "consideration"
        admin = re.search(r"Admin token: (\S+)", output).group(1)  # the operator's APIs work with it
        rules = httpx.get(f"http://127.0.0.1:{first + 1}/v1/admin/rules", headers={"authorization": f"Bearer {admin}"})
        assert rules.status_code == 200 and rules.json()["version"], rules.text
        sources = httpx.get(f"http://127.0.0.1:{first}/v1/admin/sources", headers={"authorization": f"Bearer {admin}"})
        assert sources.status_code == 200, sources.text
        dashboard = re.search(r"Dashboard \(analytics\): (\S+)", output).group(1)  # the printed link
        assert dashboard == f"http://127.0.0.1:{first + 1}/dashboard#token={token}"
        page = httpx.get(dashboard.split("#")[0])
        assert page.status_code == 200 and "dashboard" in page.text.lower(), page.text[:200]
        assert "python3 dev.py demo --url" in output  # not the default port: the demo command names it
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    assert rest.strip().endswith("stopped.")
    for port in range(first, first + 4):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still served after Ctrl-C"
