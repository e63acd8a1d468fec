"""Server-side scripts: each index change is atomic, and a query is one round trip.

Adding and removing touch dozens to hundreds of keys (a document frequency per word, a
posting list per posted term); doing it in a script makes the change all-or-nothing for
readers and other workers. The query runs where the posting lists are, so only the
best few dozen candidates cross the network instead of thousands of posting entries.
Key names follow `keys.py`.
"""

# KEYS: ids, doc record, stats, df, then one posting key per posted term
# ARGV: id, number, lang, ts, length, v, u, sig, digest, cap, n_df, df terms..., posting weights...
ADD = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
local cap = tonumber(ARGV[10])
local n_df = tonumber(ARGV[11])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], 'id', ARGV[1], 'lang', ARGV[3], 'ts', ARGV[4], 'dl', ARGV[5],
  'v', ARGV[6], 'u', ARGV[7], 'sig', ARGV[8], 'h', ARGV[9])
for i = 12, 11 + n_df do redis.call('HINCRBY', KEYS[4], ARGV[i], 1) end
redis.call('HINCRBY', KEYS[3], 'n', 1)
redis.call('HINCRBYFLOAT', KEYS[3], 'len', ARGV[5])
local w = 12 + n_df
for i = 5, #KEYS do
  redis.call('ZADD', KEYS[i], ARGV[w + i - 5], ARGV[2])
  local size = redis.call('ZCARD', KEYS[i])
  if size > cap then redis.call('ZREMRANGEBYRANK', KEYS[i], 0, size - cap - 1) end
end
return 1
"""

# KEYS: ids, doc record, stats, df, then one posting key per posted term
# ARGV: id, number, length, n_df, df terms...
REMOVE = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
local n_df = tonumber(ARGV[4])
for i = 5, 4 + n_df do
  if redis.call('HINCRBY', KEYS[4], ARGV[i], -1) <= 0 then redis.call('HDEL', KEYS[4], ARGV[i]) end
end
for i = 5, #KEYS do redis.call('ZREM', KEYS[i], ARGV[2]) end
redis.call('HINCRBY', KEYS[3], 'n', -1)
redis.call('HINCRBYFLOAT', KEYS[3], 'len', -tonumber(ARGV[3]))
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"""

# KEYS: ids
# ARGV: prefix, id, query_terms, posting_reads, feedback_docs, expansion_terms, feedback_mix, candidates
# Returns {own sketch, id, score, ts, sketch, id, score, ts, sketch, ...}, best first, or {} if unknown.
QUERY = """
local prefix = ARGV[1]
local num = redis.call('HGET', KEYS[1], ARGV[2])
if not num then return {} end
local rec = redis.call('HMGET', prefix .. ':d:' .. num, 'lang', 'v', 'sig')
if not rec[2] then return {} end
local lang = rec[1]
local vec = cjson.decode(rec[2])
if #vec == 0 then return {rec[3]} end
local tq, m = tonumber(ARGV[3]), tonumber(ARGV[4])
local r, e, alpha, c = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local n = tonumber(redis.call('HGET', prefix .. ':stats:' .. lang, 'n') or '1')

local names = {}
for i, t in ipairs(vec) do names[i] = t[1] end
local dfs = redis.call('HMGET', prefix .. ':df:' .. lang, unpack(names))
local q = {}
for i, t in ipairs(vec) do
  local df = tonumber(dfs[i] or '1')
  q[i] = {t[1], math.log(1 + (n - df + 0.5) / (df + 0.5)) * t[2]}
end
table.sort(q, function(a, b) return a[2] > b[2] end)

-- the k best {key, score} of a table, descending; one pass, no full sort
local function best(scores, k)
  local out, size = {}, 0
  if k <= 0 then return out end
  for key, s in pairs(scores) do
    if size < k or s > out[size][2] then
      if size < k then size = size + 1 end
      local i = size
      while i > 1 and out[i - 1][2] < s do out[i] = out[i - 1]; i = i - 1 end
      out[i] = {key, s}
    end
  end
  return out
end

local cache = {}
local function accumulate(weights)
  local acc = {}
  for term, w in pairs(weights) do
    local p = cache[term]
    if not p then
      p = redis.call('ZREVRANGE', prefix .. ':t:' .. lang .. ':' .. term, 0, m - 1, 'WITHSCORES')
      cache[term] = p
    end
    for j = 1, #p, 2 do
      local d = p[j]
      acc[d] = (acc[d] or 0) + w * tonumber(p[j + 1])
    end
  end
  acc[num] = nil
  return acc
end

local query, qsum = {}, 0
for i = 1, math.min(tq, #q) do qsum = qsum + q[i][2] end
if qsum <= 0 then qsum = 1 end
for i = 1, math.min(tq, #q) do query[q[i][1]] = q[i][2] / qsum end
local acc = accumulate(query)

if r > 0 and e > 0 and alpha > 0 then
  local top, total = best(acc, r), 0
  for _, x in ipairs(top) do total = total + x[2] end
  if total > 0 then
    local expansion = {}
    for _, x in ipairs(top) do
      local v = redis.call('HGET', prefix .. ':d:' .. x[1], 'v')
      if v then
        local share = x[2] / total
        for _, t in ipairs(cjson.decode(v)) do expansion[t[1]] = (expansion[t[1]] or 0) + t[3] * share end
      end
    end
    for term, w in pairs(query) do query[term] = w * (1 - alpha) end
    for _, x in ipairs(best(expansion, e)) do query[x[1]] = (query[x[1]] or 0) + alpha * x[2] end
    acc = accumulate(query)
  end
end

local out = {rec[3]}
for _, x in ipairs(best(acc, c)) do
  local meta = redis.call('HMGET', prefix .. ':d:' .. x[1], 'id', 'ts', 'sig')
  if meta[1] then
    out[#out + 1] = meta[1]
    out[#out + 1] = tostring(x[2])
    out[#out + 1] = meta[2]
    out[#out + 1] = meta[3] or ''
  end
end
return out
"""
