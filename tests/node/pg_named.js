'use strict';
// node pg_named.js '<json>'  — node `pg` clients with named statements, for wirepool's transaction
// pooling tests.
//
// JSON: {host, port, user, password, database, clients?, loops?, timeoutMs?}
// Creates table named_counts (in the user's own schema: search_path "$user" first), then runs
// `clients` connections at once (default 20), each `loops` times (default 40):
//   - named statement q1 `SELECT $1::int + $2::int AS s` and q2 (text concatenation), shared texts;
//   - named statement `mine`, the same name on every client with a text of the client's own;
//   - every third loop, inside BEGIN/COMMIT: named `upd` (UPDATE of the client's row) and named
//     `get` (read back, checked), and on every ninth a named UPDATE in a transaction rolled back;
//   - an unnamed parameterised query and pg_backend_pid() (named `pid`), counting server switches.
// node `pg` sends a Parse only the first time a connection runs a name; afterwards only Bind and
// Execute, which the proxy must route to whatever server the connection has by then.
// Prints one JSON line:
//   {"ok": true, "executions": N, "switches": N, "pids": N}                       exit 0
//   {"ok": false, "client": i, "loop": n, "error": {code, message, ...}}        exit 1
// and exits 2 if the whole run takes longer than timeoutMs (default 60 s).
const { Client } = require('pg');

const params = JSON.parse(process.argv[2] || '{}');
const clients = params.clients || 20;
const loops = params.loops || 40;
const progress = { step: 'start' };

const watchdog = setTimeout(() => {
  console.log(JSON.stringify({ ok: false, error: { message: 'timeout' }, progress }));
  process.exit(2);
}, params.timeoutMs || 60000);

function describe(err) {
  return {
    code: err.code || null,
    message: err.message || String(err),
    detail: err.detail || null,
    where: err.where || null,
  };
}

const { expect, runClients } = require('./concurrent');

async function connect() {
  const c = new Client({
    host: params.host,
    port: params.port,
    user: params.user,
    password: params.password,
    database: params.database,
    connectionTimeoutMillis: 10000,
    application_name: 'pg_named',
  });
  await c.connect();
  return c;
}

function get(id) {
  return { name: 'get', text: 'SELECT n FROM named_counts WHERE id = $1', values: [id] };
}

async function runClient(id, stats) {
  const c = await connect();
  let lastPid = null;
  try {
    await c.query({ name: 'ins', text: 'INSERT INTO named_counts VALUES ($1, 0)', values: [id] });
    let count = 0;
    for (let i = 0; i < loops; i++) {
      progress[id] = i;
      let r = await c.query({ name: 'q1', text: 'SELECT $1::int + $2::int AS s', values: [id, i] });
      expect(`client ${id} loop ${i} q1`, r.rows[0].s, id + i);
      r = await c.query({
        name: 'q2',
        text: "SELECT $1::text || ':' || $2::text AS t, $2::int * 2 AS d",
        values: [`c${id}`, i],
      });
      expect(`client ${id} loop ${i} q2`, `${r.rows[0].t}/${r.rows[0].d}`, `c${id}:${i}/${2 * i}`);
      // The same name on every client, a text of this client's own.
      r = await c.query({ name: 'mine', text: `SELECT $1::int * ${id + 1} AS p`, values: [i] });
      expect(`client ${id} loop ${i} mine`, r.rows[0].p, i * (id + 1));
      r = await c.query('SELECT $1::text AS u', [`unnamed ${id}/${i}`]);
      expect(`client ${id} loop ${i} unnamed`, r.rows[0].u, `unnamed ${id}/${i}`);
      stats.executions += 4;

      if (i % 3 === 0) {
        await c.query('BEGIN');
        r = await c.query({
          name: 'upd',
          text: 'UPDATE named_counts SET n = n + 1 WHERE id = $1',
          values: [id],
        });
        expect(`client ${id} loop ${i} upd rowCount`, r.rowCount, 1);
        count += 1;
        r = await c.query(get(id));
        expect(`client ${id} loop ${i} get in transaction`, r.rows[0].n, count);
        await c.query('COMMIT');
        stats.executions += 2;
      }
      if (i % 9 === 4) {
        await c.query('BEGIN');
        await c.query({
          name: 'upd',
          text: 'UPDATE named_counts SET n = n + 1 WHERE id = $1',
          values: [id],
        });
        await c.query('ROLLBACK');
        r = await c.query(get(id));
        expect(`client ${id} loop ${i} get after rollback`, r.rows[0].n, count);
        stats.executions += 2;
      }

      r = await c.query({ name: 'pid', text: 'SELECT pg_backend_pid() AS pid' });
      const pid = r.rows[0].pid;
      stats.pids.add(pid);
      if (lastPid !== null && pid !== lastPid) {
        stats.switches += 1;
      }
      lastPid = pid;
      stats.executions += 1;
    }
    const r = await c.query(get(id));
    expect(`client ${id} final count`, r.rows[0].n, count);
  } finally {
    await c.end();
  }
}

async function main() {
  progress.step = 'setup';
  const setup = await connect();
  await setup.query('CREATE TABLE IF NOT EXISTS named_counts (id int PRIMARY KEY, n int NOT NULL)');
  await setup.query('TRUNCATE named_counts');
  await setup.end();

  progress.step = 'run';
  const stats = { executions: 0, switches: 0, pids: new Set() };
  const ok = await runClients(
    clients,
    (id) => runClient(id, stats),
    progress,
    describe,
    () => ({
      executions: stats.executions,
      switches: stats.switches,
      pids: stats.pids.size,
    })
  );
  clearTimeout(watchdog);
  if (!ok) {
    process.exit(1);
  }
}

main().catch((err) => {
  clearTimeout(watchdog);
  console.log(JSON.stringify({ ok: false, step: progress.step, error: describe(err) }));
  process.exit(1);
});
