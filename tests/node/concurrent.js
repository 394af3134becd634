'use strict';
// What the concurrent driver checks (pg_named.js, mysql_execute.js) share: a checked expectation,
// and running many clients at once with the one JSON line the Python test reads.

class Mismatch extends Error {}

function expect(what, got, want) {
  if (got !== want) {
    throw new Mismatch(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }
}

// Runs runClient(id) for ids 0..count-1 at once. Prints {ok: true, ...summary()}, or the first
// failure (with the loop it was in, from progress[id]) and up to four more; returns whether all
// clients succeeded.
async function runClients(count, runClient, progress, describe, summary) {
  const results = await Promise.allSettled(
    Array.from({ length: count }, (_, id) =>
      runClient(id).catch((err) => {
        err.client = id;
        err.loop = progress[id];
        throw err;
      })
    )
  );
  const failed = results.filter((r) => r.status === 'rejected').map((r) => r.reason);
  if (failed.length > 0) {
    console.log(
      JSON.stringify({
        ok: false,
        failures: failed.length,
        client: failed[0].client,
        loop: failed[0].loop,
        error: describe(failed[0]),
        others: failed.slice(1, 5).map((e) => `client ${e.client}: ${e.message}`),
      })
    );
    return false;
  }
  console.log(JSON.stringify({ ok: true, ...summary() }));
  return true;
}

module.exports = { Mismatch, expect, runClients };
