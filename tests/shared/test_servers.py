"""Free ports for the embedded stack: distinct, and never one that another part will bind later."""

from __future__ import annotations

import socket

from pressroom import processes
from shared import servers


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = servers.free_ports(20)
    assert len(set(ports)) == 20
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_free_ports_never_returns_an_avoided_port() -> None:
    # every port the kernel handed out a moment ago is avoided: none may come back
    avoided = set(servers.free_ports(200))
    chosen = servers.free_ports(200, avoid=avoided)
    assert not avoided & set(chosen)


def test_seaweed_ports_avoid_the_api_and_site_ports(tmp_path) -> None:
    avoid = set(servers.free_ports(100))
    command = processes.seaweed_command("weed", str(tmp_path), 8333, avoid)
    ports = [int(arg.split("=", 1)[1]) for arg in command if arg.split("=")[0].endswith("port")
             or arg.split("=")[0].endswith("port.grpc")]
    assert len(ports) == 10 and 8333 in ports
    assert len(set(ports)) == len(ports)
    assert not avoid & set(ports)
