"""Server-side scripts: each index change is atomic, and adding or querying is one round trip.

Adding an article touches a document frequency per word and a posting list per posted
term; doing it in one script makes the change all-or-nothing for readers and other
workers, and lets the BM25 weights use the statistics as they are at that moment. The
query runs where the posting lists are, so only the best few dozen candidates cross the
network instead of thousands of posting entries. Key names follow `keys.py`; the
formulas are the ones documented in `scoring.py`.
"""

# Shared helpers, prepended to the scripts that need them.
_HELPERS = """
local function idf(df, n) return math.log(1 + (n - df + 0.5) / (df + 0.5)) end
local function round4(x) return math.floor(x * 10000 + 0.5) / 10000 end
-- the k best {key, score} of a table, descending, equal scores by key: a min-heap of k holds
-- the best so far with the one to drop at its root, then one sort of k. (pairs() order varies
-- from call to call, so ties go by key, not by the order they are met.)
local function best(scores, k)
  local heap, size = {}, 0
  if k <= 0 then return heap end
  for key, s in pairs(scores) do
    if size < k then
      size = size + 1
      local i = size
      while i > 1 do
        local half = (i - i % 2) / 2
        local up = heap[half]
        if s < up[2] or (s == up[2] and key > up[1]) then heap[i] = up; i = half else break end
      end
      heap[i] = {key, s}
    elseif s > heap[1][2] or (s == heap[1][2] and key < heap[1][1]) then
      local i = 1
      while true do
        local c = 2 * i
        if c > size then break end
        local l, r = heap[c], heap[c + 1]
        if r and (r[2] < l[2] or (r[2] == l[2] and r[1] > l[1])) then c = c + 1; l = r end
        if l[2] < s or (l[2] == s and l[1] > key) then heap[i] = l; i = c else break end
      end
      heap[i] = {key, s}
    end
  end
  table.sort(heap, function(a, b) return a[2] > b[2] or (a[2] == b[2] and a[1] < b[1]) end)
  return heap
end
"""

# KEYS: ids
# ARGV: prefix, id, lang, ts, length, terms ("term\ttf" lines), entities (lines), full-vector blob, sketch,
#       digest, k1, b, posted_terms, entity_weight, posting_cap
# Returns {1} when added, {0, digest} when the id is already indexed (the caller decides).
ADD = _HELPERS + """
local prefix, id, lang = ARGV[1], ARGV[2], ARGV[3]
local old = redis.call('HGET', KEYS[1], id)
if old then return {0, redis.call('HGET', prefix .. ':d:' .. old, 'h') or ''} end
local length = tonumber(ARGV[5])
local k1, b, posted, ew, cap = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13]),
  tonumber(ARGV[14]), tonumber(ARGV[15])
local number = redis.call('INCR', prefix .. ':seq')
local stats = prefix .. ':stats:' .. lang
local n = redis.call('HINCRBY', stats, 'n', 1)
local avg = tonumber(redis.call('HINCRBYFLOAT', stats, 'len', length)) / n
if avg <= 0 then avg = 1 end
local norm = k1 * (1 - b + b * length / avg)
local dfkey = prefix .. ':df:' .. lang
local posting = prefix .. ':t:' .. lang .. ':'

local rank, weight, sat, idfs = {}, {}, {}, {}
for term, tf in string.gmatch(ARGV[6], '([^\\t\\n]+)\\t([^\\n]+)') do
  tf = tonumber(tf)
  local w = tf * (k1 + 1) / (tf + norm)
  local i = idf(redis.call('HINCRBY', dfkey, term, 1), n)
  rank[term], weight[term], sat[term], idfs[term] = w * i, w, tf * (k1 + 1) / (tf + k1), i
end

local function post(term, w)
  local key = posting .. term
  redis.call('ZADD', key, w, number)
  local size = redis.call('ZCARD', key)
  if size > cap then redis.call('ZREMRANGEBYRANK', key, 0, size - cap - 1) end
end

local stored, mass = {}, 0
for j, x in ipairs(best(rank, posted)) do
  local term = x[1]
  post(term, weight[term])
  stored[j] = {term, round4(sat[term]), sat[term] * idfs[term]}
  mass = mass + sat[term] * idfs[term]
end
for entity in string.gmatch(ARGV[7], '[^\\n]+') do
  post(entity, 1)
  local m = ew * idf(redis.call('HINCRBY', dfkey, entity, 1), n)
  stored[#stored + 1] = {entity, ew, m}
  mass = mass + m
end
if mass <= 0 then mass = 1 end
for _, s in ipairs(stored) do s[3] = round4(s[3] / mass) end
local v = '[]'
if #stored > 0 then v = cjson.encode(stored) end
redis.call('HSET', prefix .. ':d:' .. number, 'id', id, 'lang', lang, 'ts', ARGV[4], 'dl', ARGV[5],
  'v', v, 'f', ARGV[8], 'sig', ARGV[9], 'h', ARGV[10])
redis.call('HSET', KEYS[1], id, number)
redis.call('SADD', prefix .. ':m:' .. lang, number)
return {1}
"""

# KEYS: ids
# ARGV: prefix, id, number, df terms (lines)
# Returns 1 when removed, 0 when the id no longer maps to that number (changed meanwhile).
REMOVE = """
local prefix, id, number = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', KEYS[1], id) ~= number then return 0 end
local record = prefix .. ':d:' .. number
local rec = redis.call('HMGET', record, 'lang', 'dl', 'v')
if rec[1] then
  local lang = rec[1]
  local dfkey = prefix .. ':df:' .. lang
  for term in string.gmatch(ARGV[4], '[^\\n]+') do
    if redis.call('HINCRBY', dfkey, term, -1) <= 0 then redis.call('HDEL', dfkey, term) end
  end
  for _, t in ipairs(cjson.decode(rec[3] or '[]')) do
    redis.call('ZREM', prefix .. ':t:' .. lang .. ':' .. t[1], number)
  end
  redis.call('SREM', prefix .. ':m:' .. lang, number)
  local stats = prefix .. ':stats:' .. lang
  redis.call('HINCRBY', stats, 'n', -1)
  redis.call('HINCRBYFLOAT', stats, 'len', -tonumber(rec[2] or '0'))
end
redis.call('DEL', record)
redis.call('HDEL', KEYS[1], id)
return 1
"""

# KEYS: ids
# ARGV: prefix, id, query_terms, posting_reads, min_reads, feedback_docs, expansion_terms,
#       expansion_reads, feedback_mix, candidates
# Returns {own sketch, own full vector, lang, n, total length, then per candidate: record number, score,
#          id, digest}, best first; {} if unknown. The caller reads the records it has not kept
#          (`records.py`): their full vectors feed `rerank.py`.
QUERY = _HELPERS + """
local prefix = ARGV[1]
local num = redis.call('HGET', KEYS[1], ARGV[2])
if not num then return {} end
local rec = redis.call('HMGET', prefix .. ':d:' .. num, 'lang', 'v', 'sig', 'f')
if not rec[2] then return {} end
local lang = rec[1]
local stats = redis.call('HMGET', prefix .. ':stats:' .. lang, 'n', 'len')
local out = {rec[3], rec[4] or '', lang, stats[1] or '1', stats[2] or '0'}
local vec = cjson.decode(rec[2])
if #vec == 0 then return out end
local tq, reads, min_reads = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local r, e, ereads = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local alpha, c = tonumber(ARGV[9]), tonumber(ARGV[10])
local n = tonumber(stats[1] or '1')
local posting = prefix .. ':t:' .. lang .. ':'

local names = {}
for i, t in ipairs(vec) do names[i] = t[1] end
local dfs = redis.call('HMGET', prefix .. ':df:' .. lang, unpack(names))
-- a term only this article has cannot retrieve anything: leave it out of the query
local q = {}
for i, t in ipairs(vec) do
  local df = tonumber(dfs[i] or '1')
  if df > 1 then q[#q + 1] = {t[1], idf(df, n) * t[2]} end
end
table.sort(q, function(x, y) if x[2] ~= y[2] then return x[2] > y[2] end return x[1] < y[1] end)

local query, qsum = {}, 0
for i = 1, math.min(tq, #q) do qsum = qsum + q[i][2] end
if qsum <= 0 then qsum = 1 end
for i = 1, math.min(tq, #q) do query[q[i][1]] = q[i][2] / qsum end

-- postings read so far; each term's share of a read budget follows its query weight,
-- so the heavy terms are read deep and the light ones only at their top
local cache = {}
local function read(weights, budget)
  local total = 0
  for term, w in pairs(weights) do if not cache[term] then total = total + w end end
  if total <= 0 then total = 1 end
  for term, w in pairs(weights) do
    if not cache[term] then
      local m = math.max(min_reads, math.floor(budget * w / total))
      cache[term] = redis.call('ZREVRANGE', posting .. term, 0, m - 1, 'WITHSCORES')
    end
  end
end
local function accumulate(acc, weights)
  for term, w in pairs(weights) do
    local p = cache[term]
    for j = 1, #p, 2 do
      local d = p[j]
      acc[d] = (acc[d] or 0) + w * tonumber(p[j + 1])
    end
  end
  acc[num] = nil
  return acc
end

read(query, reads)
local acc = accumulate({}, query)

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
    -- scores under (1 - alpha) * query + alpha * expansion: rescale, then add the expansion
    local added = {}
    for _, x in ipairs(best(expansion, e)) do added[x[1]] = alpha * x[2] end
    read(added, ereads)
    for d, s in pairs(acc) do acc[d] = s * (1 - alpha) end
    acc = accumulate(acc, added)
  end
end

-- a language with no more articles than candidates: every one of them is a candidate,
-- so the second stage ranks the whole language exactly, whatever the postings found
if n <= c + 1 then
  for _, d in ipairs(redis.call('SMEMBERS', prefix .. ':m:' .. lang)) do
    if d ~= num and not acc[d] then acc[d] = 0 end
  end
end
for _, x in ipairs(best(acc, c)) do
  local meta = redis.call('HMGET', prefix .. ':d:' .. x[1], 'id', 'h')
  if meta[1] then
    out[#out + 1] = x[1]
    out[#out + 1] = tostring(x[2])
    out[#out + 1] = meta[1]
    out[#out + 1] = meta[2] or ''
  end
end
return out
"""
