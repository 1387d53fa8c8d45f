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
    "COUNT",
    "DELETE_ALL",
    "DELETE_CHUNK",
    "DELETE_IDS",
    "DELETE_RECORDS",
    "INDEX_PAGE",
    "RANGES",
    "READ_CHUNK",
    "READ_IDS",
    "READ_RANGE",
    "READ_ROWS",
    "UPDATE_FIELDS",
    "WRITE_CHUNK",
    "WRITE_RECORDS",
    "LuaScript",
    "ScriptCall",
    "script",
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
    # Whether it writes: a store's first writing call for a model records its index state
    # first (see `_index_state`); reading calls need not wait for that.
    writes: bool = False
    # Whether running a call twice is harmless (it reads, and cleans up what is stale):
    # such calls may be sent together on a cluster (see `_node_batches`).
    repeatable: bool = False
    # The source in two parts, for a script made by `script`: the prelude and the functions
    # it needs (`library`, which sets a call's header with `begin_call`), and the code of
    # one call (`body`).
    library: str = ""
    body: str = ""
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

    def command_with_source(self) -> tuple[Any, ...]:
        """The call as an EVAL: it runs the script's text, and leaves it loaded on the
        server (the node) that runs it."""
        return ("EVAL", self.script.source, len(self.keys), *self.keys, *self.args)


# What every script starts with: its header, the server clock, key type checks, write
# tokens, and keeping a record's index entries in step with it.
_PRELUDE = """
-- The call's header. A node batch (see `_node_batches`) defines the functions below once
-- and runs several calls, each after `begin_call` with its own keys and arguments.
local KEYS, ARGV = KEYS, ARGV
local ns, nfields, token, INDEX, EXPIRY, shard_checked
local function begin_call(keys, argv)
  KEYS, ARGV = keys, argv
  ns, nfields, token = ARGV[1], tonumber(ARGV[2]), ARGV[3]
  INDEX, EXPIRY = KEYS[1], KEYS[2]
  shard_checked = false
end
begin_call(KEYS, ARGV)

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
  shard_checked = not err
  return err
end

-- Reading calls check their keys' types only when a read fails (a read of a key of another
-- type raises), to name the key in the error; and before their first write (cleaning up
-- expired or vanished records), as writing calls do first. Checking every call's keys
-- first took six TYPE calls per bucket: a third of a small query's time on a cluster.
local function before_writing()
  if shard_checked then return end
  local err = check_shard()
  if err then error(err) end
end

local function read_checked(main)
  local ok, reply = pcall(main)
  if ok then return reply end
  local err = check_shard()
  if err then return err end
  -- Redis 7.0 gives pcall the error as text (TRYAGAIN, WRONGTYPE...): as an error reply it
  -- keeps its code, which raising it again as text would hide behind ERR.
  if type(reply) == 'table' then return reply end
  return redis.error_reply(tostring(reply))
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

-- Drop records' entries from the secondary indexes: per field, one command of each kind
-- for all of them (calls carry at most DELETE_CHUNK records, within unpack's limit).
local function unindex_all(pks)
  for i = 1, nfields do
    local values = KEYS[2 + 2 * i]
    local olds = redis.call('HMGET', values, unpack(pks))
    local members, owners = {}, {}
    for r = 1, #pks do
      if olds[r] then
        members[#members + 1] = olds[r] .. pks[r]
        owners[#owners + 1] = pks[r]
      end
    end
    if #members > 0 then
      redis.call('ZREM', KEYS[1 + 2 * i], unpack(members))
      redis.call('HDEL', values, unpack(owners))
    end
  end
end

local function unindex(pk)
  unindex_all({pk})
end

-- Drop every index entry of a record that is gone.
local function forget(pk)
  before_writing()
  redis.call('ZREM', INDEX, pk)
  redis.call('ZREM', EXPIRY, pk)
  unindex(pk)
end

-- Give secondary index entries to fields of records: field i of record r, `pks[r]`, gets
-- the encoding ARGV[ats[r] + i - 1] ('' leaves that field's entry as it is; a record given
-- twice ends with its last encodings). Done per field for all the records at once, in one
-- HMGET, ZREM, ZADD and HSET: commands per record and field made an indexed write twice as
-- slow as a plain one. Calls carry at most WRITE_CHUNK records: unpack's limit is far off.
local function move_entries(zset, values, pks, latest)
  local olds = redis.call('HMGET', values, unpack(pks))
  local gone, added, stored = {}, {}, {}
  for r = 1, #pks do
    local pk, enc, old = pks[r], latest[pks[r]], olds[r]
    if old ~= enc then
      if old then gone[#gone + 1] = old .. pk end
      added[#added + 1] = 0
      added[#added + 1] = enc .. pk
      stored[#stored + 1] = pk
      stored[#stored + 1] = enc
    end
  end
  if #gone > 0 then redis.call('ZREM', zset, unpack(gone)) end
  if #added > 0 then
    redis.call('ZADD', zset, unpack(added))
    redis.call('HSET', values, unpack(stored))
  end
end

local function reindex_all(pks, ats)
  for i = 1, nfields do
    local latest, order = {}, {}
    for r = 1, #pks do
      local enc = ARGV[ats[r] + i - 1]
      if enc ~= '' then
        if not latest[pks[r]] then order[#order + 1] = pks[r] end
        latest[pks[r]] = enc
      end
    end
    if #order > 0 then move_entries(KEYS[1 + 2 * i], KEYS[2 + 2 * i], order, latest) end
  end
end

local function reindex(pk, at)
  reindex_all({pk}, {at})
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
  if #due > 0 then before_writing() end
  for i = 1, #due do
    local pk = due[i]
    local left = redis.pcall('PTTL', ns .. pk)
    if type(left) == 'table' then
      -- On a cluster, Redis refuses a key the call did not declare while its slot moves to
      -- another master (the record may be there by now): the call waits, as it would for
      -- a key it declared, instead of failing or taking the record for gone.
      error({err = 'TRYAGAIN the slot of ' .. ns .. pk .. ' is moving'})
    end
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
READ_ROWS = """
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


def script(
    name: str,
    body: str,
    *parts: str,
    writes: bool = False,
    repeatable: bool = False,
    reads: bool = False,
) -> LuaScript:
    """A script: the prelude, `parts` (functions it needs), then `body`. `reads`: it only
    reads (and cleans up what is stale), and checks its keys' types lazily (see
    `read_checked` in the prelude)."""
    if reads:
        body = f"local function main(){body}end\nreturn read_checked(main)\n"
    library = _PRELUDE + "".join(parts)
    return LuaScript(name, library + body, writes, repeatable, library, body)


# ARGV after the header: mode, n, field names (n), then per record: pk, ttl in ms (0: keep
# the record's TTL), n values, one encoding per indexed field. Returns the number of records
# written, or -1 when the mode's condition does not hold (nothing was written). Modes: 'set'
# writes, 'nx' only if none of the records exists, 'xx' only if all of them exist,
# 'cas:<field>:<version>' only if each record's stored <field> is the text <version> ('0'
# when the record or the field is absent): the optimistic-concurrency check of a version
# field. Versions are compared as text, since Lua's numbers are doubles, exact only to 2^53.
# Every key's type is checked before anything is written, so that a bad key fails the call
# whole instead of leaving half of the records written.
WRITE_RECORDS = script(
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
local args, members, pks, encodings_at = {}, {}, {}, {}
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
  pks[r], encodings_at[r] = pk, i + 2 + n
end
if r > 0 then redis.call('ZADD', INDEX, unpack(members)) end
reindex_all(pks, encodings_at)
return remember(r)
""",
    writes=True,
)

# ARGV after the header: per record: pk, ttl in ms (0: keep), k, k field/value pairs, one
# encoding per indexed field ('' where it did not change). Updates only records that
# exist: a record that is gone (expired, deleted) stays gone. Returns the primary keys of
# the records that were not there.
UPDATE_FIELDS = script(
    "update_fields",
    """
local replayed = replay()
if replayed then return replayed end
local err = check_shard()
if err then return err end
local i = 4
while i <= #ARGV do
  err = check_type(ns .. ARGV[i], 'hash')
  if err then return err end
  i = i + 3 + 2 * tonumber(ARGV[i + 2]) + nfields
end
local missing, updated, encodings_at = {}, {}, {}
i = 4
while i <= #ARGV do
  local pk, ttl, k = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local key = ns .. pk
  if redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, unpack(ARGV, i + 3, i + 2 + 2 * k))
    redis.call('ZADD', INDEX, 0, pk)
    if ttl > 0 then set_ttl(key, pk, ttl, true) end
    updated[#updated + 1] = pk
    encodings_at[#updated] = i + 3 + 2 * k
  else
    missing[#missing + 1] = pk
  end
  i = i + 3 + 2 * k + nfields
end
reindex_all(updated, encodings_at)
return remember(missing)
""",
    writes=True,
)

# ARGV after the header: mode ('rank' or 'lex'), start (a rank, or an exclusive lex bound
# like '(pk'), count, field names. Returns {last pk scanned or false, number of pks
# scanned, bad, rows} (see READ_ROWS), or AGAIN.
READ_RANGE = script(
    "read_range",
    """
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
    READ_ROWS,
    reads=True,
)

# ARGV after the header: mode, start, count as for READ_RANGE, then in 'lex' mode an upper
# bound ('+' for none, or '[pk'). Returns up to `count` live primary keys, or AGAIN.
INDEX_PAGE = script(
    "index_page",
    """
if not purge() then return redis.status_reply('AGAIN') end
local count = tonumber(ARGV[6])
if ARGV[4] == 'rank' then
  local start = tonumber(ARGV[5])
  return redis.call('ZRANGE', INDEX, start, start + count - 1)
end
return redis.call('ZRANGEBYLEX', INDEX, ARGV[5], ARGV[7], 'LIMIT', 0, count)
""",
    reads=True,
)

# Delete the records `pks` (a Lua list) with their index entries; how many existed.
# `first_of_index`: they are the first entries of the index. One DEL of many keys, and no
# command per record: measured here, a delete-all of 10,000 records went from 250,000 to
# 500,000 records/s when the keys stopped being deleted one DEL at a time, and to about
# 1,100,000 when the index entries went by rank and the absent expiry set was skipped.
DELETE_RECORDS = """
local function delete_records(pks, first_of_index)
  if #pks == 0 then return 0 end
  local keys = {}
  for i = 1, #pks do keys[i] = ns .. pks[i] end
  local deleted = redis.call('DEL', unpack(keys))
  if first_of_index then  -- the index's first entries: by rank, cheaper than by name
    redis.call('ZREMRANGEBYRANK', INDEX, 0, #pks - 1)
  else
    redis.call('ZREM', INDEX, unpack(pks))
  end
  if redis.call('EXISTS', EXPIRY) == 1 then redis.call('ZREM', EXPIRY, unpack(pks)) end
  unindex_all(pks)
  return deleted
end
"""

# ARGV after the header: pks. Returns how many records existed.
DELETE_IDS = script(
    "delete_ids",
    """
local replayed = replay()
if replayed then return replayed end
local err = check_shard()
if err then return err end
return remember(delete_records({unpack(ARGV, 4)}))
""",
    DELETE_RECORDS,
    writes=True,
)

# ARGV after the header: count. Deletes up to `count` records from the front of the index;
# returns {records deleted, index entries left}.
DELETE_ALL = script(
    "delete_all",
    """
local replayed = replay()
if replayed then return replayed end
local err = check_shard()
if err then return err end
local deleted = delete_records(redis.call('ZRANGE', INDEX, 0, tonumber(ARGV[4]) - 1), true)
local left = redis.call('ZCARD', INDEX)
if left == 0 then
  for i = 2, 2 + 2 * nfields do redis.call('DEL', KEYS[i]) end
end
return remember({deleted, left})
""",
    DELETE_RECORDS,
    writes=True,
)

# Returns the number of live records, or AGAIN.
COUNT = script(
    "count",
    """
if not purge() then return redis.status_reply('AGAIN') end
return redis.call('ZCARD', INDEX)
""",
    repeatable=True,
    reads=True,
)


# -- conditions on index entries (see `_query_runner`), for READ_IDS and `_index_scripts` --

# Byte order of strings, and ZRANGEBYLEX bounds ('[x', '(x', '-', '+') tested in Lua. Lua's
# own `<` on strings follows the server's locale (strcoll), not the bytes that sorted sets
# use: hence the comparison by hand (equality of prefixes, then one byte).
RANGES = """
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

-- The ranges are sorted and disjoint: the only one that can hold `member` is the last one
-- whose lower bound it passes, found by halving (a condition may have thousands of ranges).
local function in_ranges(member, bounds)
  local low, high, found = 1, #bounds / 2, 0
  while low <= high do
    local mid = math.floor((low + high) / 2)
    if above(member, bounds[2 * mid - 1]) then found, low = mid, mid + 1 else high = mid - 1 end
  end
  return found > 0 and below(member, bounds[2 * found])
end

-- ARGV[first .. first + count - 1] as a list (unpack has a limit of a few thousand values).
local function argv_list(first, count)
  local list = {}
  for i = 1, count do list[i] = ARGV[first + i - 1] end
  return list
end

-- Conditions from ARGV[at...]: a count, then per condition the field's position, a count of
-- ranges and their bounds. Returns them and the position after them.
local function read_conditions(at)
  local conditions = {}
  local count = tonumber(ARGV[at])
  at = at + 1
  for c = 1, count do
    local field, q = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
    conditions[c] = {field, argv_list(at + 2, 2 * q)}
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

# ARGV after the header: n, field names (n), conditions (see read_conditions; a count of 0
# for none), then 0 and pks, or an indexed field's position and pk/entry pairs. Returns
# {false, number of pks, bad, rows}, the shape of READ_RANGE's reply, with the rows of the
# records that exist, meet the conditions and still hold the given entry of that field (a
# query reads in another call the records it found in order: one changed meanwhile so as not
# to meet them, or to stand elsewhere in the order, is left out).
# Reading by key needs no purge to be exact (Redis itself hides an expired key); a bounded
# one runs anyway, to keep the index clean.
READ_IDS = script(
    "read_ids",
    """
purge()
local n = tonumber(ARGV[4])
local fields = {unpack(ARGV, 5, 4 + n)}
local conditions, at = read_conditions(5 + n)
local order = tonumber(ARGV[at])  -- 0, or an indexed field: pk/entry pairs follow
local asked, entries = {}, {}
if order == 0 then
  asked = argv_list(at + 1, #ARGV - at)
else
  for i = at + 1, #ARGV, 2 do
    local j = #asked + 1
    asked[j] = ARGV[i]
    entries[j] = ARGV[i + 1]
  end
end
local pks = asked
if #conditions > 0 or order > 0 then
  pks = {}
  for i = 1, #asked do
    local pk = asked[i]
    local placed = order == 0 or redis.call('HGET', KEYS[2 + 2 * order], pk) == entries[i]
    if placed and meets(pk, conditions) then pks[#pks + 1] = pk end
  end
end
local rows, bad = {}, {}
read_rows(pks, fields, rows, bad)
return {false, #asked, bad, rows}
""",
    READ_ROWS,
    RANGES,
    repeatable=True,
    reads=True,
)
