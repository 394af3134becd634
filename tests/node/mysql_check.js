'use strict';
// node mysql_check.js '<json>'  — one mysql2 client session for wirepool's integration tests.
//
// JSON: {host, port, user, password, database, table?, loginOnly?, timeoutMs?}
// Logs in (mysql2 answers the handshake with the plugin the server names: caching_sha2_password
// when wirepool's client_auth says so, as MySQL 8 clients do), then runs query() (text protocol)
// and execute() (COM_STMT_PREPARE / EXECUTE, binary protocol); with `table`, creates it, inserts
// 50 rows with execute() and reads them back both ways. Prints one JSON line:
//   {"ok": true, "threadId": ..., "authPlugin": ..., "serverVersion": ..., ...}    exit 0
//   {"ok": false, "error": {"errno", "code", "sqlState", "message"}}            exit 1
// and exits 2 if the whole thing takes longer than timeoutMs (default 30 s).
const mysql = require('mysql2/promise');

const params = JSON.parse(process.argv[2] || '{}');
const out = { ok: false };

const watchdog = setTimeout(() => {
  console.log(JSON.stringify({ ok: false, error: { message: 'timeout', at: out.step } }));
  process.exit(2);
}, params.timeoutMs || 30000);

function fail(err) {
  clearTimeout(watchdog);
  console.log(
    JSON.stringify({
      ok: false,
      step: out.step,
      error: {
        errno: err.errno === undefined ? null : err.errno,
        code: err.code || null,
        sqlState: err.sqlState || null,
        message: err.sqlMessage || err.message || String(err),
      },
    })
  );
  process.exit(1);
}

async function main() {
  out.step = 'connect';
  const conn = await mysql.createConnection({
    host: params.host,
    port: params.port,
    user: params.user,
    password: params.password,
    database: params.database,
    connectTimeout: 10000,
    multipleStatements: false,
  });
  const raw = conn.connection;
  out.threadId = raw.threadId;
  out.authPlugin = raw._handshakePacket ? raw._handshakePacket.authPluginName : null;
  out.serverVersion = raw._handshakePacket ? raw._handshakePacket.serverVersion : null;
  if (params.loginOnly) {
    await conn.end();
    return;
  }

  out.step = 'query';
  let [rows] = await conn.query('SELECT 1 + 1 AS two, CURRENT_USER() AS user, DATABASE() AS db');
  out.query = { two: Number(rows[0].two), user: rows[0].user, db: rows[0].db };
  [rows] = await conn.query('SELECT ? AS s, ? AS n', ['it\'s "quoted"', 7]);
  out.queryEscaped = rows[0].s === 'it\'s "quoted"' && Number(rows[0].n) === 7;

  out.step = 'execute';
  [rows] = await conn.execute('SELECT ? + ? AS s, ? AS t, CONNECTION_ID() AS backendId', [40, 2, 'héllo ✓']);
  out.execute = { sum: Number(rows[0].s), text: rows[0].t };
  out.backendId = Number(rows[0].backendId);

  if (params.table) {
    const t = params.table;
    out.step = 'create';
    await conn.query(`CREATE TABLE ${t} (id INT PRIMARY KEY, name VARCHAR(40), data VARBINARY(200), f DOUBLE)`);
    out.step = 'insert';
    for (let i = 1; i <= 50; i++) {
      await conn.execute(`INSERT INTO ${t} (id, name, data, f) VALUES (?, ?, ?, ?)`, [
        i,
        `name ${i}`,
        Buffer.from([i, 0, 255, 39, 92]),
        i / 4,
      ]);
    }
    out.step = 'prepared';
    const stmt = await conn.prepare(`SELECT name, data, f FROM ${t} WHERE id = ?`);
    let good = 0;
    for (let i = 1; i <= 50; i += 7) {
      const [r] = await stmt.execute([i]);
      if (
        r.length === 1 &&
        r[0].name === `name ${i}` &&
        Buffer.compare(r[0].data, Buffer.from([i, 0, 255, 39, 92])) === 0 &&
        r[0].f === i / 4
      ) {
        good++;
      }
    }
    await stmt.close();
    out.preparedRowsOk = good;
    out.step = 'readback';
    [rows] = await conn.execute(`SELECT COUNT(*) AS n, SUM(id) AS s FROM ${t} WHERE id > ?`, [0]);
    out.executeCount = { n: Number(rows[0].n), s: Number(rows[0].s) };
    [rows] = await conn.query(`SELECT COUNT(*) AS n, SUM(id) AS s FROM ${t}`);
    out.queryCount = { n: Number(rows[0].n), s: Number(rows[0].s) };
    out.step = 'update';
    const [res] = await conn.execute(`UPDATE ${t} SET f = f WHERE id <= ?`, [10]);
    out.updateAffected = res.affectedRows; // mysql2 sets CLIENT_FOUND_ROWS: matched rows
  }

  out.step = 'end';
  await conn.end();
}

main()
  .then(() => {
    clearTimeout(watchdog);
    out.ok = true;
    delete out.step;
    console.log(JSON.stringify(out));
    process.exit(0);
  })
  .catch(fail);
