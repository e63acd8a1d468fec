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

from shared.locks import LeaseBusy, lease


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
