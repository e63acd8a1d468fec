"""Leases on real Redis: renewed while held, freed soon after the holder dies."""

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
import redis

from shared.locks import LeaseBusy, lease, leases


def test_a_held_lease_is_renewed_past_its_ttl(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    name = f"test:lease:{uuid.uuid4().hex}"
    with lease(client, name, ttl=1, wait=0):
        time.sleep(2.5)
        with pytest.raises(LeaseBusy), lease(client, name, ttl=1, wait=0.1):
            pass
    with lease(client, name, ttl=1, wait=0):
        pass


def test_a_killed_holder_frees_the_lease_within_its_ttl(redis_server):
    name = f"test:lease:{uuid.uuid4().hex}"
    code = (
        "import sys, time, redis; from shared.locks import lease\n"
        f"c = redis.Redis.from_url({redis_server.url!r})\n"
        f"with lease(c, {name!r}, ttl=2, wait=1):\n"
        "    print('held', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    client = redis.Redis.from_url(redis_server.url)
    acquired = threading.Event()
    with lease(client, name, ttl=2, wait=10):
        acquired.set()
    assert acquired.is_set()


def test_leases_take_the_free_names_and_exclude_lease_both_ways(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    names = [f"test:leases:{uuid.uuid4().hex}" for _ in range(3)]
    with lease(client, names[0], ttl=5, wait=0), leases(client, names, ttl=1) as taken:
        assert taken == set(names[1:])
        time.sleep(1.5)  # renewed past the ttl
        with pytest.raises(LeaseBusy), lease(client, names[1], ttl=1, wait=0.1):
            pass
    assert not any(client.exists(n) for n in names)  # each released by its holder


def test_the_same_owner_takes_back_the_leases_of_its_killed_run(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    names = [f"test:leases:{uuid.uuid4().hex}" for _ in range(2)]
    for name in names:  # what a killed run of this work left behind
        client.set(name, "rebuild:run:pages:3", px=20000)
    with leases(client, names, owner="rebuild:run:pages:4") as other:
        assert other == set()
    with leases(client, names, owner="rebuild:run:pages:3") as mine:
        assert mine == set(names)
    assert not any(client.exists(n) for n in names)
