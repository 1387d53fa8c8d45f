"""The server-side scripts of the migration from pydantic-aioredis 1.4 (see `_upgrade`).

They follow the convention of every script (see `_scripts`): KEYS start with the model's
shard keys (index, expiry set, each indexed field's sorted set and hash of encodings), and
ARGV with the header (namespace, number of indexed fields, write token), so that they share
the prelude's functions: a record is written with its index entries (`reindex`) and a call
that redis-py sends twice answers its first reply (`replay`, `remember`). After the shard
keys come the model's list of records still to do (`{namespace}__index:~upgrading_1.4`)
and the list of those left as they were (`{namespace}__index:~unconverted_1.4`). The
store's check for 1.4 data (`_legacy`) lets these scripts through: they must reach a model
while its 1.4 data is there.

Each call is bounded (a chunk of records, or a batch of index entries), so that an
application keeps being served while a migration runs. A record is converted by one call
that rewrites it, enters it in the indexes and takes it off the list, all at once; the call
does nothing to a record no longer on the list. So a migration killed at any point never
converts a record twice, and a rerun carries on with what is left on the list.

A record this library wrote itself (its primary key is in our index, under its own key) is
in today's layout already: a rerun takes it off the list as it is. That is how a record
left over by an earlier run and written again by the application since is recognised.
"""

from __future__ import annotations

from ._scripts import _PRELUDE, LuaScript

__all__ = ["CONVERT", "EXISTING", "MIGRATION_SCRIPTS", "PREPARE", "READ", "SIZE"]

# What CONVERT did to each record.
DONE_BEFORE, CONVERTED, GONE, TAKEN, NOT_A_HASH, CURRENT = 0, 1, 2, 3, 4, 5

# Shared by the scripts below, after the prelude: the two lists, and how to tell a record
# in today's layout.
_COMMON = """
local WORK, UNCONVERTED = KEYS[3 + 2 * nfields], KEYS[4 + 2 * nfields]

-- Whether `key` is a record this library wrote: in our index, under its own key.
local function is_current(key)
  if string.sub(key, 1, #ns) ~= ns then return false end
  return redis.call('ZSCORE', INDEX, string.sub(key, #ns + 1)) ~= false
end
"""


def _script(name: str, body: str, writes: bool = False) -> LuaScript:
    return LuaScript(name, _PRELUDE + _COMMON + body, writes)


# KEYS after the lists: the state key of the model's indexes and its build lock, then the
# sets whose entries go onto the work list: 1.4's index under the lower-cased prefix if it
# differs from ours (either holds a set only if 1.4 wrote it; ours is INDEX), and the records
# an earlier run could not convert (so that they are tried again). ARGV after the header:
# batch size, the prefix of the keys where 1.4 records are moved aside.
# First, a 1.4 record (a hash on a 1.4 list) at one of the model's own keys (all of KEYS but
# INDEX and the sets) is renamed aside and taken off the lists: left there, it would make
# every call on the model fail. Then a set is renamed to the work list when there is none
# yet (O(1)), else its entries move over a batch at a time. 1.4 gave its index a TTL; the
# list must not expire with it.
# Returns {1 when everything is on the list else 0, the list's size, {key, where it went,
# ... for the records moved aside}}.
PREPARE = _script(
    "upgrade_prepare",
    """
local replayed = replay()
if replayed then return replayed end
local batch, aside = tonumber(ARGV[4]), ARGV[5]
local sets = {WORK, INDEX}
for i = 7 + 2 * nfields, #KEYS do sets[#sets + 1] = KEYS[i] end
sets[#sets + 1] = UNCONVERTED

local function listed(key)
  local found = false
  for _, set in ipairs(sets) do
    if redis.call('TYPE', set).ok == 'set' and redis.call('SREM', set, key) == 1 then
      found = true
    end
  end
  return found
end

-- Where a record goes aside: by its suffix, or, where a 1.4 record holds that key already
-- (its primary key named it), with ~2, ~3... after it.
local function free_place(key)
  local target = aside .. string.sub(key, #ns + 1)
  local place, n = target, 1
  while redis.call('EXISTS', place) == 1 do
    n = n + 1
    place = target .. '~' .. n
  end
  return place
end

local moved = {}  -- key, where it went, ...
for i = 2, 6 + 2 * nfields do
  local key = KEYS[i]
  if redis.call('TYPE', key).ok == 'hash' and listed(key) then
    local target = free_place(key)
    redis.call('RENAME', key, target)
    moved[#moved + 1] = key
    moved[#moved + 1] = target
  end
end

local function done(reply)
  if #moved > 0 then return remember(reply) end
  return reply  -- the same whenever it is sent
end

local err = check_type(WORK, 'set')
if err then return err end
for i = 2, #sets do
  local key = sets[i]
  if redis.call('TYPE', key).ok == 'set' then
    if redis.call('EXISTS', WORK) == 0 then
      redis.call('RENAME', key, WORK)
      redis.call('PERSIST', WORK)
    else
      redis.call('SADD', WORK, unpack(redis.call('SPOP', key, batch)))
      if redis.call('EXISTS', key) == 1 then
        return done({0, redis.call('SCARD', WORK), moved})
      end
    end
  end
end
return done({1, redis.call('SCARD', WORK), moved})
""",
    # Not counted as the model's first write, which records its index states in a key
    # (`__index:~state`) that a 1.4 record may hold: this call moves such a record aside
    # first (see `IndexState._first_write`).
    writes=False,
)

# KEYS after the lists: the set to read. ARGV after the header: SSCAN cursor, count.
# Returns {next cursor, {{key, type, {field, value, ...}, current}, ...}} for the keys the set
# lists; `current` is 1 for a record in today's layout (its fields are not read).
READ = _script(
    "upgrade_read",
    """
local scan = redis.call('SSCAN', KEYS[5 + 2 * nfields], ARGV[4], 'COUNT', tonumber(ARGV[5]))
-- Before a migration has started, INDEX may still hold 1.4's set: nothing is current then.
local ours = redis.call('TYPE', INDEX).ok == 'zset'
local records = {}
for i, key in ipairs(scan[2]) do
  local t = redis.call('TYPE', key).ok
  local fields, current = {}, 0
  if t == 'hash' then
    if ours and is_current(key) then
      current = 1
    else
      fields = redis.call('HGETALL', key)
    end
  end
  records[i] = {key, t, fields, current}
end
return {scan[1], records}
""",
)

# ARGV after the header: n, then n keys whose record was gone when read; n, then n keys that
# could not be converted; n, then n keys of records in today's layout; then per record: its
# 1.4 key, its primary key, k, k field/value pairs to write, and an encoding per indexed
# field. Only keys still on the work list are touched. A record is renamed to its new key
# (which keeps its TTL) if that differs, rewritten field by field (fields the model does not
# have stay), entered in the index, the indexes of its fields and, with its remaining TTL,
# the expiry set, and taken off the list. One whose new key holds another record, or that is
# no hash any more, is moved to the unconverted list, untouched; one in today's layout is
# taken off the list, untouched. Returns {entries of records gone, records found in today's
# layout, {status per record}} (the statuses are named at the top of this module).
CONVERT = _script(
    "upgrade_convert",
    """
local replayed = replay()
if replayed then return replayed end
local err = check_shard()
if err then return err end
local function listed(key) return redis.call('SISMEMBER', WORK, key) == 1 end
local changed = false
local function take_off(key)
  redis.call('SREM', WORK, key)
  changed = true
end
local function set_aside(key)
  redis.call('SMOVE', WORK, UNCONVERTED, key)
  changed = true
end

local i = 4
local gone, current = 0, 0
local n = tonumber(ARGV[i])
for j = i + 1, i + n do
  if listed(ARGV[j]) and redis.call('EXISTS', ARGV[j]) == 0 then
    take_off(ARGV[j])
    gone = gone + 1
  end
end
i = i + n + 1
n = tonumber(ARGV[i])
for j = i + 1, i + n do
  if listed(ARGV[j]) then set_aside(ARGV[j]) end
end
i = i + n + 1
n = tonumber(ARGV[i])
for j = i + 1, i + n do
  -- Left on the list if it changed since it was read: the next pass reads it again.
  if listed(ARGV[j]) and is_current(ARGV[j]) then
    take_off(ARGV[j])
    current = current + 1
  end
end
i = i + n + 1

local DONE_BEFORE, CONVERTED, GONE, TAKEN, NOT_A_HASH, CURRENT = 0, 1, 2, 3, 4, 5
local statuses, members, expiring, lasting, done = {}, {}, {}, {}, {}
local now
while i <= #ARGV do
  local old, pk, k = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local at = i + 3 + 2 * k  -- the index encodings
  local key = ns .. pk
  local status = DONE_BEFORE
  if listed(old) then
    local t = redis.call('TYPE', old).ok
    if t == 'none' then
      done[#done + 1] = old
      status = GONE
    elseif t ~= 'hash' then
      set_aside(old)
      status = NOT_A_HASH
    elseif is_current(old) then
      take_off(old)
      status = CURRENT
    elseif key ~= old and redis.call('EXISTS', key) == 1 then
      set_aside(old)
      status = TAKEN
    else
      if key ~= old then redis.call('RENAME', old, key) end
      if k > 0 then redis.call('HSET', key, unpack(ARGV, i + 3, at - 1)) end
      reindex(pk, at)
      -- The TTL rule of every write given no life span (`set_ttl`): the record keeps its
      -- TTL, and the expiry set says so; here in one command for the whole call.
      local ttl = redis.call('PTTL', key)
      if ttl > 0 then
        now = now or now_ms()
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
  i = at + nfields
end
if #expiring > 0 then redis.call('ZADD', EXPIRY, unpack(expiring)) end
if #lasting > 0 then redis.call('ZREM', EXPIRY, unpack(lasting)) end
if #members > 0 then redis.call('ZADD', INDEX, unpack(members)) end
if #done > 0 then
  redis.call('SREM', WORK, unpack(done))
  changed = true
end
local reply = {gone, current, statuses}
if changed then return remember(reply) end
return reply  -- nothing done: the same whenever it is sent
""",
    writes=True,
)

# ARGV after the header: keys. Returns 1 for each key that exists, else 0 (for a dry run).
EXISTING = _script(
    "upgrade_existing",
    """
local found = {}
for i = 4, #ARGV do found[i - 3] = redis.call('EXISTS', ARGV[i]) end
return found
""",
)

# KEYS after the lists: a key. Returns the size of the set at the key (0 when it holds none).
SIZE = _script(
    "upgrade_size",
    """
local key = KEYS[5 + 2 * nfields]
if redis.call('TYPE', key).ok ~= 'set' then return 0 end
return redis.call('SCARD', key)
""",
)

MIGRATION_SCRIPTS = frozenset({PREPARE, READ, CONVERT, EXISTING, SIZE})
