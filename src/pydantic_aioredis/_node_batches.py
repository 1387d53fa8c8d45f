"""Small script calls bound for one cluster node, sent as one call (a *node batch*).

On a cluster a model's calls are per bucket, and a query, a count or a read of a few records
by id asks every bucket: 64 small calls. Each costs redis-py's cluster pipeline tens of
microseconds of Python, more than the server spends running it. So calls of one script
that are small and safe to run again, bound for the same node, go out as one call of a
wrapper script that runs each in turn and returns their replies (`batch_script`).

Redis routes a call by the keys it declares and refuses declared keys of several slots
(CROSSSLOT, even for a script flagged allow-cross-slot-keys, on Redis 7.0), so a batch
declares the keys of its first call only. Redis still lets a script touch a key it did not
declare, but only where the key's slot is served by this node and not being moved (see
`Shard.probe_key`). So before each call of another bucket, the wrapper touches that
bucket's probe key: a call whose slot is not (or no longer only) here is left out, and
sent on its own, where Redis refuses or redirects it as it does any call.

Bounded: only small calls are batched (a read of a few records, a count, a query's scan of
a bucket), and the wrapper starts no further call after BATCH_BUDGET_US of running; those
left go out in the next round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from ._keys import WRITE_PREFIX
from ._scripts import LuaScript, ScriptCall

__all__ = ["BATCH_BUDGET_US", "Batch", "batch_script", "batches"]

# Calls with more keys and arguments than this go on their own: their time is the
# server's more than the client's, and a batch of them would run long.
_SMALL_CALL = 64
_MOST_IN_A_BATCH = 64
# The time after which a batch starts no further call: a bound for the rare batch whose
# calls scan much (each call is bounded on its own).
BATCH_BUDGET_US = 3000

_RAN, _NOT_STARTED = 1, 0  # and -1: its slot is not served here alone

# ARGV: the number of calls n, the time budget, the probe key suffix, then per call the
# number of its keys and of its arguments (0 keys for the first: its keys are KEYS), then
# per call its keys and its arguments. The script's functions are defined once (its
# `library`); each call runs its `body` after `begin_call` sets its keys and arguments.
_WRAPPER = """
%s
local function run()
%s
end
local batch_keys, batch_args = KEYS, ARGV
local n, budget, suffix = tonumber(batch_args[1]), tonumber(batch_args[2]), batch_args[3]
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local started = clock()
local states, replies = {}, {}
local a = 3 + 2 * n
for c = 1, n do
  local nk, na = tonumber(batch_args[2 + 2 * c]), tonumber(batch_args[3 + 2 * c])
  local keys = batch_keys
  if c > 1 then keys = {unpack(batch_args, a + 1, a + nk)} end
  local args = {unpack(batch_args, a + nk + 1, a + nk + na)}
  a = a + nk + na
  states[c], replies[c] = 0, false
  if c == 1 or clock() - started < budget then
    -- A key this call does not declare, of a slot this node does not serve alone, is an
    -- error: then the call is left to be sent on its own.
    if c > 1 and type(redis.pcall('EXISTS', args[1] .. suffix)) == 'table' then
      states[c] = -1
    else
      begin_call(keys, args)
      local ok, reply = pcall(run)
      if not ok and type(reply) ~= 'table' then reply = redis.error_reply(tostring(reply)) end
      if reply == nil then reply = false end
      states[c], replies[c] = 1, reply
    end
  end
end
return {states, replies}
"""


@cache
def batch_script(script: LuaScript) -> LuaScript:
    """The wrapper that runs several calls of `script` in one (see the module docstring)."""
    if not script.library:
        raise ValueError(f"{script.name} was not made by `script`: it cannot run in a batch")
    source = _WRAPPER % (script.library, script.body)
    return LuaScript(f"{script.name} (batch)", source, script.writes)


@dataclass(frozen=True)
class Batch:
    """Calls (by their positions in what was asked) sent as one; or one call as it is."""

    positions: list[int]
    call: ScriptCall
    batched: bool = False

    def replies(self, reply: Any) -> tuple[list[tuple[int, Any]], list[int], list[int]]:
        """Split the reply: (position, reply) of the calls that ran, then the positions of
        those to send again (in a batch, or on their own)."""
        if not self.batched:
            return [(self.positions[0], reply)], [], []
        if isinstance(reply, Exception):  # refused whole: its first call's slot moves
            return [], [], list(self.positions)
        states, replies = reply
        ran, again, alone = [], [], []
        for position, state, value in zip(self.positions, states, replies):
            if state == _RAN:
                ran.append((position, value))
            elif state == _NOT_STARTED:
                again.append(position)
            else:
                alone.append(position)
        return ran, again, alone


def batches(
    calls: Sequence[ScriptCall], node_of: Callable[[ScriptCall], Any], alone: set[int]
) -> list[Batch]:
    """The calls grouped by node and script into batches; those at the positions `alone`,
    large ones, those not safe to run again and those of unknown node go on their own."""
    groups: dict[tuple[Any, LuaScript], list[int]] = {}
    out: list[Batch] = []
    for position, call in enumerate(calls):
        node = node_of(call) if _batchable(call) and position not in alone else None
        if node is None:
            out.append(Batch([position], call))
            continue
        group = groups.setdefault((node, call.script), [])
        group.append(position)
        if len(group) == _MOST_IN_A_BATCH:
            out.append(_batch(calls, groups.pop((node, call.script))))
    out += [_batch(calls, group) for group in groups.values()]
    return out


def _batchable(call: ScriptCall) -> bool:
    return call.script.repeatable and len(call.keys) + len(call.args) <= _SMALL_CALL


def _batch(calls: Sequence[ScriptCall], positions: list[int]) -> Batch:
    if len(positions) == 1:
        return Batch(positions, calls[positions[0]])
    members = [calls[p] for p in positions]
    args: list[Any] = [len(members), BATCH_BUDGET_US, WRITE_PREFIX]
    for i, call in enumerate(members):
        args += (len(call.keys) if i else 0, len(call.args))
    for i, call in enumerate(members):
        if i:
            args += call.keys
        args += call.args
    script = batch_script(members[0].script)
    return Batch(positions, ScriptCall(script, members[0].keys, tuple(args)), batched=True)
