"""The server-side Lua scripts, and how they are called.

Why scripts rather than pipelines of plain commands: a script writes a record, its index
entries and its TTL bookkeeping atomically, checks key types before it writes anything
(MULTI/EXEC does not roll back), and reads thousands of hashes in one call. redis-py spends
about 13 us of Python time per command, so one call per few hundred records instead of one
command per record is what makes bulk reads and writes fast.

Every call is bounded (`WRITE_CHUNK`, `READ_CHUNK` records, `PURGE_BATCH` expired entries)
so that no single script stalls other clients for more than a few milliseconds.

The calling convention, the same for every script (see `ModelTable.script_call`):

* KEYS: the shard's index and expiry sets, then for each indexed field its sorted set and
  its hash of current encodings (`Shard.keys`), then, on a cluster only, every other key the
  call touches (the write token's key, the record keys), so that Redis can keep a call away
  from a half-migrated slot (TRYAGAIN, ASK) instead of letting the script find records
  missing. Scripts build record keys from the namespace, which is safe because every key of
  a model shares it.
* ARGV: the namespace, the number of indexed fields, a write token ('' for none), then the
  script's own arguments.

Write tokens. redis-py sends a command again after a timeout or a dropped connection, and a
script whose first run did land would then run twice. Scripts whose reply or effect differs
on a second run (a versioned write, an insert-if-absent, a delete that counts) take a random
token; the first run leaves its reply under `{namespace}__write:{token}` for five minutes,
and a second run with the same token returns that reply without doing anything.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AGAIN",
    "BUILD_INDEX",
    "COUNT",
    "COUNT_RANGES",
    "DELETE_ALL",
    "DELETE_CHUNK",
    "DELETE_IDS",
    "DELETE_MATCHING",
    "DROP_KEYS",
    "INDEX_COUNTS",
    "INDEX_PAGE",
    "INDEX_STATE",
    "QUERY",
    "READ_CHUNK",
    "READ_IDS",
    "READ_RANGE",
    "UPDATE_FIELDS",
    "WRITE_CHUNK",
    "WRITE_RECORDS",
    "LuaScript",
    "ScriptCall",
    "write_token",
]

# Records per script call, so that no call keeps the server from other clients for long.
# Measured here (2 cores, Redis 7) for six-field records: a write of 250 takes the server
# about 2-3 ms, a read of 500 about 2 ms, a delete of 1,000 about 1.5 ms.
WRITE_CHUNK = 250
READ_CHUNK = 500
DELETE_CHUNK = 1000

# The reply of a read or count that found more expired records than one call may clean up
# (`PURGE_BATCH`): the caller sends the same call again, until the answer is exact.
AGAIN = "AGAIN"


def write_token() -> str:
    """A fresh token for a call that must not be applied twice (see the module's docstring)."""
    return os.urandom(9).hex()


@dataclass(frozen=True)
class LuaScript:
    """A Lua script identified by its SHA1, loaded on the server on first use."""

    name: str
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


@dataclass(frozen=True)
class ScriptCall:
    """One EVALSHA to send: the script, its keys and its arguments."""

    script: LuaScript
    keys: tuple[str, ...]
    args: tuple[Any, ...]

    def command(self) -> tuple[Any, ...]:
        return ("EVALSHA", self.script.sha, len(self.keys), *self.keys, *self.args)


# What every script starts with: its header, the server clock, key type checks, write
# tokens, and keeping a record's index entries in step with it.
_PRELUDE = """
local ns, nfields, token = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local INDEX, EXPIRY = KEYS[1], KEYS[2]

-- Server time in milliseconds: TTL bookkeeping runs on the clock that expires keys.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- An error reply when `key` holds something other than `want` (or nothing); and its type.
local function check_type(key, want)
  local t = redis.call('TYPE', key).ok
  if t ~= want and t ~= 'none' then
    local message = 'WRONGTYPE key ' .. key .. ' holds a ' .. t .. ', expected a ' .. want
    return redis.error_reply(message), t
  end
  return nil, t
end

-- The shard's own keys: index and expiry sets, and each indexed field's set and hash.
local function check_shard()
  local err = check_type(INDEX, 'zset') or check_type(EXPIRY, 'zset')
  for i = 1, nfields do
    err = err or check_type(KEYS[1 + 2 * i], 'zset') or check_type(KEYS[2 + 2 * i], 'hash')
  end
  return err
end

-- The reply of this call's first run, when this run is redis-py sending it again.
local function replay()
  if token == '' then return nil end
  local done = redis.call('GET', ns .. '__write:' .. token)
  if done then return cjson.decode(done) end
  return nil
end

local function remember(reply)
  if token ~= '' then
    redis.call('SET', ns .. '__write:' .. token, cjson.encode(reply), 'PX', 300000)
  end
  return reply
end

-- Drop a record's entries from the secondary indexes.
local function unindex(pk)
  for i = 1, nfields do
    local values = KEYS[2 + 2 * i]
    local old = redis.call('HGET', values, pk)
    if old then
      redis.call('ZREM', KEYS[1 + 2 * i], old .. pk)
      redis.call('HDEL', values, pk)
    end
  end
end

-- Drop every index entry of a record that is gone.
local function forget(pk)
  redis.call('ZREM', INDEX, pk)
  redis.call('ZREM', EXPIRY, pk)
  unindex(pk)
end

-- Move a record's secondary index entries to the encodings ARGV[at .. at + nfields - 1]
-- ('' leaves that field's entry as it is).
local function reindex(pk, at)
  for i = 1, nfields do
    local enc = ARGV[at + i - 1]
    if enc ~= '' then
      local values = KEYS[2 + 2 * i]
      local old = redis.call('HGET', values, pk)
      if old ~= enc then
        if old then redis.call('ZREM', KEYS[1 + 2 * i], old .. pk) end
        redis.call('ZADD', KEYS[1 + 2 * i], 0, enc .. pk)
        redis.call('HSET', values, pk, enc)
      end
    end
  end
end

-- The TTL rule of every write: a write given a TTL (ms > 0) sets it; a write given none
-- keeps the TTL the record has, if any. The expiry set then holds exactly the records that
-- have a TTL: an entry left by an earlier life of the record would delete it (purge).
local function set_ttl(key, pk, ttl, existed)
  if ttl > 0 then
    local at = now_ms() + ttl
    redis.call('PEXPIREAT', key, at)
    redis.call('ZADD', EXPIRY, at, pk)
    return
  end
  local left = -1
  if existed then left = redis.call('PTTL', key) end
  if left > 0 then
    redis.call('ZADD', EXPIRY, now_ms() + left, pk)
  else
    redis.call('ZREM', EXPIRY, pk)
  end
end

-- Drop the index entries of up to PURGE_BATCH records whose expiry time has passed, so that
-- an expired record never shows up in a read or shifts a page. An entry is trusted only as
-- far as the record's own TTL agrees: a record written again without a TTL, or given a
-- later one, is kept. Returns true when no expired entry is left.
local PURGE_BATCH = 500
local function purge()
  local t = now_ms()
  local due = redis.call('ZRANGEBYSCORE', EXPIRY, '-inf', t, 'LIMIT', 0, PURGE_BATCH)
  for i = 1, #due do
    local pk = due[i]
    local left = redis.call('PTTL', ns .. pk)
    if left == -2 then
      forget(pk)
    elseif left == -1 then
      redis.call('ZREM', EXPIRY, pk)
    else
      redis.call('ZADD', EXPIRY, t + left, pk)
    end
  end
  return #due < PURGE_BATCH
end
"""

# Read the given primary keys. Appends `pk, v1..vn` per record to `rows` (false for a
# missing field) and `pk, error` per key that does not hold a hash to `bad`. A key that no
# longer exists is skipped and its stale index entries removed.
_READ_ROWS = """
local function read_rows(pks, fields, rows, bad)
  local n = #fields
  for i = 1, #pks do
    local pk = pks[i]
    local key = ns .. pk
    local row = redis.pcall('HMGET', key, unpack(fields))
    if row.err then
      bad[#bad + 1] = pk
      bad[#bad + 1] = row.err
    else
      local found = false
      for j = 1, n do
        if row[j] then found = true; break end
      end
      if not found and redis.call('EXISTS', key) == 0 then
        forget(pk)
      else
        rows[#rows + 1] = pk
        for j = 1, n do rows[#rows + 1] = row[j] end
      end
    end
  end
end
"""


def _script(name: str, body: str, *parts: str) -> LuaScript:
    return LuaScript(name, _PRELUDE + "".join(parts) + body)


# ARGV after the header: mode, n, field names (n), then per record: pk, ttl in ms (0: keep
# the record's TTL), n values, one encoding per indexed field. Returns the number of records
# written, or -1 when the mode's condition does not hold (nothing was written). Modes: 'set'
# writes, 'nx' only if none of the records exists, 'xx' only if all of them exist,
# 'cas:<field>:<version>' only if each record's stored <field> is the text <version> ('0'
# when the record or the field is absent): the optimistic-concurrency check of a version
# field. Versions are compared as text, since Lua's numbers are doubles, exact only to 2^53.
# Every key's type is checked before anything is written, so that a bad key fails the call
# whole instead of leaving half of the records written.
WRITE_RECORDS = _script(
    "write_records",
    """
local replayed = replay()
if replayed then return replayed end
local err = check_shard()
if err then return err end
local mode, n = ARGV[4], tonumber(ARGV[5])
local first, stride = 6 + n, 2 + n + nfields
local version_at  -- with 'cas:<field>:<version>', the position of <field> among the fields
local version_field, expected = string.match(mode, '^cas:([^:]+):(.*)$')
for j = 1, n do
  if ARGV[5 + j] == version_field then version_at = j end
end
local keys, existed = {}, {}
local r = 0
for i = first, #ARGV, stride do
  r = r + 1
  local key = ns .. ARGV[i]
  local bad, t = check_type(key, 'hash')
  if bad then return bad end
  keys[r], existed[r] = key, t == 'hash'
  if (mode == 'nx' and existed[r]) or (mode == 'xx' and not existed[r]) then
    return remember(-1)
  end
  if version_at and (redis.call('HGET', key, ARGV[5 + version_at]) or '0') ~= expected then
    return remember(-1)
  end
end
-- Records of a shard have TTLs only if its expiry set exists: without one, a write that
-- sets no TTL has no entry to clear.
local expiring = redis.call('EXISTS', EXPIRY) == 1
local args, members = {}, {}
for j = 1, n do args[2 * j - 1] = ARGV[5 + j] end
r = 0
for i = first, #ARGV, stride do
  r = r + 1
  local pk, ttl = ARGV[i], tonumber(ARGV[i + 1])
  for j = 1, n do args[2 * j] = ARGV[i + 1 + j] end
  redis.call('HSET', keys[r], unpack(args))
  members[2 * r - 1] = 0
  members[2 * r] = pk
  if ttl > 0 or expiring then
    set_ttl(keys[r], pk, ttl, existed[r])
    expiring = true
  end
  reindex(pk, i + 2 + n)
end
if r > 0 then redis.call('ZADD', INDEX, unpack(members)) end
return remember(r)
""",
)

# ARGV after the header: per record: pk, ttl in ms (0: keep), k, k field/value pairs, one
# encoding per indexed field ('' where it did not change). Updates only records that
# exist: a record that is gone (expired, deleted) stays gone. Returns the primary keys of
# the records that were not there.
UPDATE_FIELDS = _script(
    "update_fields",
    """
local err = check_shard()
if err then return err end
local i = 4
while i <= #ARGV do
  err = check_type(ns .. ARGV[i], 'hash')
  if err then return err end
  i = i + 3 + 2 * tonumber(ARGV[i + 2]) + nfields
end
local missing = {}
i = 4
while i <= #ARGV do
  local pk, ttl, k = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local key = ns .. pk
  if redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, unpack(ARGV, i + 3, i + 2 + 2 * k))
    redis.call('ZADD', INDEX, 0, pk)
    if ttl > 0 then set_ttl(key, pk, ttl, true) end
    reindex(pk, i + 3 + 2 * k)
  else
    missing[#missing + 1] = pk
  end
  i = i + 3 + 2 * k + nfields
end
return missing
""",
)

# ARGV after the header: mode ('rank' or 'lex'), start (a rank, or an exclusive lex bound
# like '(pk'), count, field names. Returns {last pk scanned or false, number of pks
# scanned, bad, rows} (see _READ_ROWS), or AGAIN.
READ_RANGE = _script(
    "read_range",
    """
local err = check_shard()
if err then return err end
if not purge() then return redis.status_reply('AGAIN') end
local count = tonumber(ARGV[6])
local pks
if ARGV[4] == 'rank' then
  local start = tonumber(ARGV[5])
  pks = redis.call('ZRANGE', INDEX, start, start + count - 1)
else
  pks = redis.call('ZRANGEBYLEX', INDEX, ARGV[5], '+', 'LIMIT', 0, count)
end
local rows, bad = {}, {}
read_rows(pks, {unpack(ARGV, 7)}, rows, bad)
return {pks[#pks] or false, #pks, bad, rows}
""",
    _READ_ROWS,
)

# ARGV after the header: mode, start, count as for READ_RANGE, then in 'lex' mode an upper
# bound ('+' for none, or '[pk'). Returns up to `count` live primary keys, or AGAIN.
INDEX_PAGE = _script(
    "index_page",
    """
local err = check_shard()
if err then return err end
if not purge() then return redis.status_reply('AGAIN') end
local count = tonumber(ARGV[6])
if ARGV[4] == 'rank' then
  local start = tonumber(ARGV[5])
  return redis.call('ZRANGE', INDEX, start, start + count - 1)
end
return redis.call('ZRANGEBYLEX', INDEX, ARGV[5], ARGV[7], 'LIMIT', 0, count)
""",
)

# Delete the records `pks` (a Lua list) with their index entries; how many existed. One DEL
# of many keys: measured here, a delete-all of 10,000 records went from 250,000 to 500,000
# records/s when the keys stopped being deleted one DEL at a time.
_DELETE_RECORDS = """
local function delete_records(pks)
  if #pks == 0 then return 0 end
  local keys = {}
  for i = 1, #pks do keys[i] = ns .. pks[i] end
  local deleted = redis.call('DEL', unpack(keys))
  redis.call('ZREM', INDEX, unpack(pks))
  redis.call('ZREM', EXPIRY, unpack(pks))
  for i = 1, #pks do unindex(pks[i]) end
  return deleted
end
"""

# ARGV after the header: pks. Returns how many records existed.
DELETE_IDS = _script(
    "delete_ids",
    """
local replayed = replay()
if replayed then return replayed end
local err = check_shard()
if err then return err end
return remember(delete_records({unpack(ARGV, 4)}))
""",
    _DELETE_RECORDS,
)

# ARGV after the header: count. Deletes up to `count` records from the front of the index;
# returns {records deleted, index entries left}.
DELETE_ALL = _script(
    "delete_all",
    """
local replayed = replay()
if replayed then return replayed end
local err = check_shard()
if err then return err end
local deleted = delete_records(redis.call('ZRANGE', INDEX, 0, tonumber(ARGV[4]) - 1))
local left = redis.call('ZCARD', INDEX)
if left == 0 then
  for i = 2, 2 + 2 * nfields do redis.call('DEL', KEYS[i]) end
end
return remember({deleted, left})
""",
    _DELETE_RECORDS,
)

# Returns the number of live records, or AGAIN.
COUNT = _script(
    "count",
    """
local err = check_shard()
if err then return err end
if not purge() then return redis.status_reply('AGAIN') end
return redis.call('ZCARD', INDEX)
""",
)


# -- secondary indexes (see `_indexes`, `_querying`) ----------------------------------------

# Byte order of strings, and ZRANGEBYLEX bounds ('[x', '(x', '-', '+') tested in Lua. Lua's
# own `<` on strings follows the server's locale (strcoll), not the bytes that sorted sets
# use: hence the comparison by hand (equality of prefixes, then one byte).
_RANGES = """
local function before(a, b)
  if a == b then return false end
  local n = math.min(#a, #b)
  local low, high = 0, n
  while low < high do
    local mid = math.floor((low + high + 1) / 2)
    if string.sub(a, 1, mid) == string.sub(b, 1, mid) then low = mid else high = mid - 1 end
  end
  if low == n then return #a < #b end
  return string.byte(a, low + 1) < string.byte(b, low + 1)
end

local function above(member, bound)
  if bound == '-' then return true end
  if bound == '+' then return false end
  local x = string.sub(bound, 2)
  if string.sub(bound, 1, 1) == '[' then return not before(member, x) end
  return before(x, member)
end

local function below(member, bound)
  if bound == '+' then return true end
  if bound == '-' then return false end
  local x = string.sub(bound, 2)
  if string.sub(bound, 1, 1) == '[' then return not before(x, member) end
  return before(member, x)
end

local function in_ranges(member, bounds)
  for r = 1, #bounds, 2 do
    if above(member, bounds[r]) and below(member, bounds[r + 1]) then return true end
  end
  return false
end

-- Conditions from ARGV[at...]: a count, then per condition the field's position, a count of
-- ranges and their bounds. Returns them and the position after them.
local function read_conditions(at)
  local conditions = {}
  local count = tonumber(ARGV[at])
  at = at + 1
  for c = 1, count do
    local field, q = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
    conditions[c] = {field, {unpack(ARGV, at + 2, at + 1 + 2 * q)}}
    at = at + 2 + 2 * q
  end
  return conditions, at
end

-- Whether the record `pk` meets every condition, by its current index entries.
local function meets(pk, conditions)
  for c = 1, #conditions do
    local field, bounds = conditions[c][1], conditions[c][2]
    local enc = redis.call('HGET', KEYS[2 + 2 * field], pk)
    if not enc or not in_ranges(enc .. pk, bounds) then return false end
  end
  return true
end
"""

# Scan one indexed field's sorted set along ranges, keep the records that meet the other
# conditions. ARGV after the header: mode ('rows' or 'keys'), the scanned field's position,
# direction ('asc' or 'desc'), the range to start in (1-based), a cursor (the last member
# seen, '' for none), matches to pass over, matches to give (0: no limit), group ('': none;
# '*': once enough are given, go on with the matches of the same value; an encoding: doing
# so for that value), the most members to scan, the position of the field whose member to
# give in 'keys' mode (0: the primary key), the count of ranges and their bounds, the
# conditions (see read_conditions), and in 'rows' mode a count of fields and their names.
# Returns {range, cursor or false, finished, group or false, passed over, given, bad, out}:
# 'rows' gives `pk, v1..vn` per record (see _READ_ROWS), 'keys' the member or primary key.
QUERY = _script(
    "query",
    """
local err = check_shard()
if err then return err end
if not purge() then return redis.status_reply('AGAIN') end
local mode, scanned_field, direction = ARGV[4], tonumber(ARGV[5]), ARGV[6]
local range, cursor = tonumber(ARGV[7]), ARGV[8]
local skip, want, group = tonumber(ARGV[9]), tonumber(ARGV[10]), ARGV[11]
local budget, given_field = tonumber(ARGV[12]), tonumber(ARGV[13])
local nranges = tonumber(ARGV[14])
local ranges = {unpack(ARGV, 15, 14 + 2 * nranges)}
local conditions, at = read_conditions(15 + 2 * nranges)
local fields = {}
if mode == 'rows' then fields = {unpack(ARGV, at + 1, at + tonumber(ARGV[at]))} end
local zkey = KEYS[1 + 2 * scanned_field]
local out, bad = {}, {}
local scanned, passed, given, finished = 0, 0, 0, false

local function give(member, enc, pk)
  if mode == 'keys' then
    if given_field == 0 then
      out[#out + 1] = pk
    elseif given_field == scanned_field then
      out[#out + 1] = member
    else
      out[#out + 1] = (redis.call('HGET', KEYS[2 + 2 * given_field], pk) or '') .. pk
    end
    return true
  end
  local before_rows = #out
  read_rows({pk}, fields, out, bad)
  return #out > before_rows
end

while not finished and scanned < budget do
  if range > nranges then finished = true; break end
  local low, high = ranges[2 * range - 1], ranges[2 * range]
  local asked = budget - scanned
  local page
  if direction == 'asc' then
    if cursor ~= '' then low = '(' .. cursor end
    page = redis.call('ZRANGEBYLEX', zkey, low, high, 'LIMIT', 0, asked)
  else
    if cursor ~= '' then high = '(' .. cursor end
    page = redis.call('ZREVRANGEBYLEX', zkey, high, low, 'LIMIT', 0, asked)
  end
  for k = 1, #page do
    local member = page[k]
    local cut = string.find(member, '\\0', 1, true)
    local enc, pk = string.sub(member, 1, cut), string.sub(member, cut + 1)
    if group ~= '' and group ~= '*' and enc ~= group then finished = true; break end
    scanned, cursor = scanned + 1, member
    if meets(pk, conditions) then
      if passed < skip then
        passed = passed + 1
      elseif give(member, enc, pk) then
        given = given + 1
        if want > 0 and given >= want and group == '' then finished = true; break end
        if want > 0 and given >= want and group == '*' then group = enc end
      end
    end
  end
  if not finished and #page < asked then  -- the range is done: on to the next one
    range, cursor = range + 1, ''
  end
end
if range > nranges then finished = true end
local state_group = false
if group ~= '' and group ~= '*' then state_group = group end
return {range, cursor ~= '' and cursor or false, finished and 1 or 0, state_group,
        passed, given, bad, out}
""",
    _READ_ROWS,
    _RANGES,
)

# ARGV after the header: conditions (see read_conditions). Returns the number of records of
# the shard and, per condition, how many of its index members lie in its ranges; or AGAIN.
COUNT_RANGES = _script(
    "count_ranges",
    """
local err = check_shard()
if err then return err end
if not purge() then return redis.status_reply('AGAIN') end
local conditions = read_conditions(4)
local counts = {redis.call('ZCARD', INDEX)}
for c = 1, #conditions do
  local field, bounds = conditions[c][1], conditions[c][2]
  local total = 0
  for r = 1, #bounds, 2 do
    total = total + redis.call('ZLEXCOUNT', KEYS[1 + 2 * field], bounds[r], bounds[r + 1])
  end
  counts[#counts + 1] = total
end
return counts
""",
    _RANGES,
)

# ARGV after the header: conditions (see read_conditions), then pks. Deletes the records that
# still meet the conditions (a writer may have changed one since it was found); how many.
DELETE_MATCHING = _script(
    "delete_matching",
    """
local replayed = replay()
if replayed then return replayed end
local err = check_shard()
if err then return err end
local conditions, at = read_conditions(4)
local doomed = {}
for i = at, #ARGV do
  if meets(ARGV[i], conditions) then doomed[#doomed + 1] = ARGV[i] end
end
return remember(delete_records(doomed))
""",
    _RANGES,
    _DELETE_RECORDS,
)

# Returns, once no expired record is left (else AGAIN), the number of records of the shard
# and the number of entries of each indexed field's hash of encodings: where they are equal,
# every record has its entry, so that field's index is complete.
INDEX_COUNTS = _script(
    "index_counts",
    """
local err = check_shard()
if err then return err end
if not purge() then return redis.status_reply('AGAIN') end
local counts = {redis.call('ZCARD', INDEX)}
for i = 1, nfields do counts[#counts + 1] = redis.call('HLEN', KEYS[2 + 2 * i]) end
return counts
""",
)

# Index records that were written before their field was indexed. ARGV after the header:
# the field's position, its name, then per record: pk, '1' if the record held the field
# ('0' if it took the default), the text it held, its encoding. A record whose text changed
# since it was read is left alone: the write that changed it indexed it.
BUILD_INDEX = _script(
    "build_index",
    """
local err = check_shard()
if err then return err end
local field, name = tonumber(ARGV[4]), ARGV[5]
local zkey, values = KEYS[1 + 2 * field], KEYS[2 + 2 * field]
local done = 0
for i = 6, #ARGV, 4 do
  local pk, held, text, enc = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local now = redis.call('HGET', ns .. pk, name)
  if (held == '1' and now == text) or (held == '0' and not now and
      redis.call('EXISTS', ns .. pk) == 1) then
    local old = redis.call('HGET', values, pk)
    if old ~= enc then
      if old then redis.call('ZREM', zkey, old .. pk) end
      redis.call('ZADD', zkey, 0, enc .. pk)
      redis.call('HSET', values, pk, enc)
    end
    done = done + 1
  end
end
return done
""",
)

# KEYS: the keys to delete (an index that is no longer declared, or must be built again).
DROP_KEYS = LuaScript("drop_keys", "return redis.call('DEL', unpack(KEYS))")

# KEYS: a model's hash of index states. ARGV: 'get', or 'set' and field/state pairs, or 'del'
# and fields. Returns the states (field, state, ...) after the change.
INDEX_STATE = LuaScript(
    "index_state",
    """
if ARGV[1] == 'set' then redis.call('HSET', KEYS[1], unpack(ARGV, 2)) end
if ARGV[1] == 'del' then redis.call('HDEL', KEYS[1], unpack(ARGV, 2)) end
return redis.call('HGETALL', KEYS[1])
""",
)


# ARGV after the header: n, field names (n), conditions (see read_conditions; a count of 0
# for none), pks. Returns {false, number of pks, bad, rows}, the shape of READ_RANGE's reply,
# with the rows of the records that exist and meet the conditions (a query reads the records
# it found in an earlier call: one changed meanwhile so as not to meet them is left out).
# Reading by key needs no purge to be exact (Redis itself hides an expired key); a bounded
# one runs anyway, to keep the index clean.
READ_IDS = _script(
    "read_ids",
    """
local err = check_shard()
if err then return err end
purge()
local n = tonumber(ARGV[4])
local fields = {unpack(ARGV, 5, 4 + n)}
local conditions, at = read_conditions(5 + n)
local asked = {unpack(ARGV, at)}
local pks = asked
if #conditions > 0 then
  pks = {}
  for i = 1, #asked do
    if meets(asked[i], conditions) then pks[#pks + 1] = asked[i] end
  end
end
local rows, bad = {}, {}
read_rows(pks, fields, rows, bad)
return {false, #asked, bad, rows}
""",
    _READ_ROWS,
    _RANGES,
)
