"""The scripts' shared helpers, run in a real Redis against their Python statement."""

import random

import pytest

from services.render.related import lua

_BEST = lua._HELPERS + """
local t = {}
for i = 1, #ARGV, 2 do t[ARGV[i]] = tonumber(ARGV[i + 1]) end
local out = {}
for _, x in ipairs(best(t, tonumber(KEYS[1]))) do out[#out + 1] = x[1]; out[#out + 1] = tostring(x[2]) end
return out
"""


def test_best_is_the_k_highest_scores_with_ties_by_key_whatever_order_they_are_met(rclient):
    best = rclient.register_script(_BEST)
    rng = random.Random(3)
    for _ in range(200):
        k = rng.choice([0, 1, 5, 10, 60])
        scores = {f"d{rng.randint(0, 3000)}": rng.choice([0.5, 0.25, 2.0, rng.random()])
                  for _ in range(rng.randint(0, 250))}  # many ties, at every rank
        expected = sorted(scores.items(), key=lambda x: (-x[1], x[0]))[:k]
        got = best(keys=[k], args=[v for item in scores.items() for v in item])
        assert [g.decode() for g in got[::2]] == [key for key, _ in expected]
        assert [float(g) for g in got[1::2]] == pytest.approx([score for _, score in expected], rel=1e-12)
