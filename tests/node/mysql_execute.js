'use strict';
// node mysql_execute.js '<json>'  — node mysql2 connections using execute() (server-side prepared
// statements: COM_STMT_PREPARE / EXECUTE / CLOSE), for wirepool's transaction pooling tests.
//
// JSON: {host, port, user, password, database, table, clients?, loops?, timeoutMs?}
// Creates `table` (id INT PRIMARY KEY, n INT), then runs `clients` connections at once (default
// 20), each `loops` times (default 40):
//   - execute('SELECT ? + ? AS s', [a, b]) and a second shared text with a string parameter;
//   - a statement of the connection's own text (`SELECT ? * <id+1> AS p`);
//   - every third loop, in a transaction: an UPDATE of the connection's row and a SELECT of it,
//     committed; every ninth, the same rolled back, checked after;
//   - every fifth loop, unprepare() of the shared SELECT (COM_STMT_CLOSE; the next execute()
//     prepares it again), and on odd connections mysql2's statement cache is kept to 3 entries so
//     that it closes statements as it evicts them;
//   - CONNECTION_ID() (prepared too), counting the server switches the connection saw.
// Prints one JSON line:
//   {"ok": true, "executions": N, "switches": N, "backends": N}                     exit 0
//   {"ok": false, "client": i, "loop": n, "error": {errno, code, sqlState, message}} exit 1
// and exits 2 if the whole run takes longer than timeoutMs (default 60 s).
const mysql = require('mysql2/promise');

const params = JSON.parse(process.argv[2] || '{}');
const clients = params.clients || 20;
const loops = params.loops || 40;
const table = params.table;
const progress = { step: 'start' };

const watchdog = setTimeout(() => {
  console.log(JSON.stringify({ ok: false, error: { message: 'timeout' }, progress }));
  process.exit(2);
}, params.timeoutMs || 60000);

function describe(err) {
  return {
    errno: err.errno === undefined ? null : err.errno,
    code: err.code || null,
    sqlState: err.sqlState || null,
    message: err.sqlMessage || err.message || String(err),
  };
}

const { expect, runClients } = require('./concurrent');

async function connect(options = {}) {
  return mysql.createConnection({
    host: params.host,
    port: params.port,
    user: params.user,
    password: params.password,
    database: params.database,
    connectTimeout: 10000,
    ...options,
  });
}

async function runClient(id, stats) {
  const conn = await connect(id % 2 === 1 ? { maxPreparedStatements: 3 } : {});
  let lastBackend = null;
  try {
    await conn.execute(`INSERT INTO ${table} (id, n) VALUES (?, 0)`, [id]);
    let count = 0;
    for (let i = 0; i < loops; i++) {
      progress[id] = i;
      let [rows] = await conn.execute('SELECT ? + ? AS s', [id, i]);
      expect(`client ${id} loop ${i} sum`, Number(rows[0].s), id + i);
      [rows] = await conn.execute('SELECT CONCAT(?, \':\', ?) AS t, ? * 2 AS d', [`c${id}`, i, i]);
      expect(`client ${id} loop ${i} concat`, `${rows[0].t}/${Number(rows[0].d)}`,
             `c${id}:${i}/${2 * i}`);
      [rows] = await conn.execute(`SELECT ? * ${id + 1} AS p`, [i]);
      expect(`client ${id} loop ${i} own statement`, Number(rows[0].p), i * (id + 1));
      stats.executions += 3;

      if (i % 3 === 0) {
        await conn.beginTransaction();
        const [res] = await conn.execute(`UPDATE ${table} SET n = n + 1 WHERE id = ?`, [id]);
        expect(`client ${id} loop ${i} update affectedRows`, res.affectedRows, 1);
        count += 1;
        [rows] = await conn.execute(`SELECT n FROM ${table} WHERE id = ?`, [id]);
        expect(`client ${id} loop ${i} count in transaction`, Number(rows[0].n), count);
        await conn.commit();
        stats.executions += 2;
      }
      if (i % 9 === 4) {
        await conn.beginTransaction();
        await conn.execute(`UPDATE ${table} SET n = n + 1 WHERE id = ?`, [id]);
        await conn.rollback();
        [rows] = await conn.execute(`SELECT n FROM ${table} WHERE id = ?`, [id]);
        expect(`client ${id} loop ${i} count after rollback`, Number(rows[0].n), count);
        stats.executions += 2;
      }
      if (i % 5 === 2) {
        conn.unprepare('SELECT ? + ? AS s');
        stats.unprepared += 1;
      }

      [rows] = await conn.execute('SELECT CONNECTION_ID() AS backend');
      const backend = Number(rows[0].backend);
      stats.backends.add(backend);
      if (lastBackend !== null && backend !== lastBackend) {
        stats.switches += 1;
      }
      lastBackend = backend;
      stats.executions += 1;
    }
    const [rows] = await conn.query(`SELECT n FROM ${table} WHERE id = ${id}`);
    expect(`client ${id} final count`, Number(rows[0].n), count);
  } finally {
    await conn.end();
  }
}

async function main() {
  progress.step = 'setup';
  const setup = await connect();
  await setup.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, n INT NOT NULL)`);
  await setup.end();

  progress.step = 'run';
  const stats = { executions: 0, switches: 0, unprepared: 0, backends: new Set() };
  const ok = await runClients(
    clients,
    (id) => runClient(id, stats),
    progress,
    describe,
    () => ({
      executions: stats.executions,
      switches: stats.switches,
      unprepared: stats.unprepared,
      backends: stats.backends.size,
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
