"""The server-side scripts of the migration from pydantic-aioredis 1.4 (see `_upgrade`).

Each call is bounded (a chunk of records, or a batch of index entries), so that an
application keeps being served while a migration runs. The first key of every call is the
model's list of records still to do (`{namespace}__upgrading_1.4`), never its index: the
store's check for 1.4 data (`_legacy`) looks only at calls about an index, and the
migration is the one thing that must reach a model while its 1.4 data is there.

A record is converted by one call that rewrites it, enters it in our index and takes it
off the list, all at once; the call does nothing to a record that is no longer on the list.
So a migration killed at any point, or a call that redis-py sends twice, never converts a
record twice, and a rerun carries on with what is left on the list.
"""

from __future__ import annotations

from ._scripts import LuaScript

__all__ = ["CONVERT", "EXISTING", "PREPARE", "READ", "SIZE"]

# What CONVERT did to each record.
DONE_BEFORE, CONVERTED, GONE, TAKEN, NOT_A_HASH = 0, 1, 2, 3, 4

# KEYS: work list, then the sets whose entries go onto it: our index key and 1.4's (maybe
# the same key; either holds a set only if 1.4 wrote it), and the records an earlier run
# could not convert (so that they are tried again). ARGV: batch size.
# A set is renamed to the work list when there is none yet (O(1)), else its entries move
# over a batch at a time. 1.4 gave its index a TTL; the list must not expire with it.
# Returns {1 when everything is on the list else 0, the list's size}.
PREPARE = LuaScript(
    "upgrade_prepare",
    """
local work, batch = KEYS[1], tonumber(ARGV[1])
local t = redis.call('TYPE', work).ok
if t ~= 'set' and t ~= 'none' then
  return redis.error_reply('WRONGTYPE key ' .. work .. ' holds a ' .. t .. ', expected a set')
end
for i = 2, #KEYS do
  local key = KEYS[i]
  if redis.call('TYPE', key).ok == 'set' then
    if redis.call('EXISTS', work) == 0 then
      redis.call('RENAME', key, work)
      redis.call('PERSIST', work)
    else
      redis.call('SADD', work, unpack(redis.call('SPOP', key, batch)))
      if redis.call('EXISTS', key) == 1 then return {0, redis.call('SCARD', work)} end
    end
  end
end
return {1, redis.call('SCARD', work)}
""",
)

# KEYS: work list, the set to read. ARGV: SSCAN cursor, count. Returns
# {next cursor, {{key, type, {field, value, ...}}, ...}} for the keys the set lists.
READ = LuaScript(
    "upgrade_read",
    """
local scan = redis.call('SSCAN', KEYS[2], ARGV[1], 'COUNT', tonumber(ARGV[2]))
local records = {}
for i, key in ipairs(scan[2]) do
  local t = redis.call('TYPE', key).ok
  local fields = {}
  if t == 'hash' then fields = redis.call('HGETALL', key) end
  records[i] = {key, t, fields}
end
return {scan[1], records}
""",
)

# KEYS: work list, unconverted, our index, our expiry set. ARGV: namespace; n, then n keys
# whose record was gone when read; m, then m keys that could not be converted; then per
# record: its 1.4 key, its primary key, k, and k field/value pairs to write.
# Only keys still on the work list are touched. A record is renamed to its new key (which
# keeps its TTL) if that differs, rewritten field by field (fields the model does not have
# stay), entered in the index (and the expiry set, with its remaining TTL), and taken off
# the list. One whose new key is taken by another record, or that is no hash any more, is
# moved to `unconverted`, untouched. Returns {entries of records gone, {status per record}}
# (the statuses are named at the top of this module).
CONVERT = LuaScript(
    "upgrade_convert",
    """
local work, unconverted, index, expiry = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
for _, key in ipairs({index, expiry}) do
  local t = redis.call('TYPE', key).ok
  if t ~= 'zset' and t ~= 'none' then
    return redis.error_reply('WRONGTYPE key ' .. key .. ' holds a ' .. t .. ', expected a zset')
  end
end
local DONE_BEFORE, CONVERTED, GONE, TAKEN, NOT_A_HASH = 0, 1, 2, 3, 4
local ns, i = ARGV[1], 3
local gone, statuses = 0, {}
local n = tonumber(ARGV[2])
for j = i, i + n - 1 do
  local key = ARGV[j]
  if redis.call('SISMEMBER', work, key) == 1 and redis.call('EXISTS', key) == 0 then
    redis.call('SREM', work, key)
    gone = gone + 1
  end
end
i = i + n + 1
n = tonumber(ARGV[i - 1])
for j = i, i + n - 1 do
  if redis.call('SISMEMBER', work, ARGV[j]) == 1 then
    redis.call('SMOVE', work, unconverted, ARGV[j])
  end
end
i = i + n
local done, members, expiring, lasting = {}, {}, {}, {}
local now
while i <= #ARGV do
  local old, pk, k = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local key = ns .. pk
  local status = DONE_BEFORE
  if redis.call('SISMEMBER', work, old) == 1 then
    local t = redis.call('TYPE', old).ok
    if t == 'none' then
      done[#done + 1] = old
      status = GONE
    elseif t ~= 'hash' then
      redis.call('SMOVE', work, unconverted, old)
      status = NOT_A_HASH
    elseif key ~= old and redis.call('EXISTS', key) == 1 then
      redis.call('SMOVE', work, unconverted, old)
      status = TAKEN
    else
      if key ~= old then redis.call('RENAME', old, key) end
      if k > 0 then redis.call('HSET', key, unpack(ARGV, i + 3, i + 2 + 2 * k)) end
      local ttl = redis.call('PTTL', key)
      if ttl > 0 then
        if not now then
          local time = redis.call('TIME')
          now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
        end
        expiring[#expiring + 1] = now + ttl
        expiring[#expiring + 1] = pk
      else
        lasting[#lasting + 1] = pk
      end
      members[#members + 1] = 0
      members[#members + 1] = pk
      done[#done + 1] = old
      status = CONVERTED
    end
  end
  statuses[#statuses + 1] = status
  i = i + 3 + 2 * k
end
-- One command each for all the records of the call.
if #expiring > 0 then redis.call('ZADD', expiry, unpack(expiring)) end
if #lasting > 0 then redis.call('ZREM', expiry, unpack(lasting)) end
if #members > 0 then redis.call('ZADD', index, unpack(members)) end
if #done > 0 then redis.call('SREM', work, unpack(done)) end
return {gone, statuses}
""",
)

# KEYS: work list. ARGV: keys. Returns 1 for each key that exists, else 0 (for a dry run).
EXISTING = LuaScript(
    "upgrade_existing",
    """
local found = {}
for i = 1, #ARGV do found[i] = redis.call('EXISTS', ARGV[i]) end
return found
""",
)

# KEYS: work list, a key. Returns the size of the set at the key (0 when it holds no set).
SIZE = LuaScript(
    "upgrade_size",
    """
if redis.call('TYPE', KEYS[2]).ok ~= 'set' then return 0 end
return redis.call('SCARD', KEYS[2])
""",
)
