'use strict';
// node mysql_blob.js '<json>'  — a big LONGBLOB through the binary protocol, for wirepool's tests.
//
// JSON: {host, port, user, password, database, table, sizeMiB (default 20), timeoutMs?}
// Creates `table`, inserts random bytes with a prepared execute() (a COM_STMT_EXECUTE larger than
// 16 MiB, so split into several packets), then reads it back with execute() (a binary row packet
// split the same way) and with query() (a text row). Prints one JSON line
//   {"ok": true, "len": N, "sha256": "...", "executeMatch": bool, "queryMatch": bool}   exit 0
//   {"ok": false, "error": {...}}                                                        exit 1
// and exits 2 after timeoutMs (default 60 s).
const crypto = require('crypto');
const mysql = require('mysql2/promise');

const params = JSON.parse(process.argv[2] || '{}');
let step = 'start';

const watchdog = setTimeout(() => {
  console.log(JSON.stringify({ ok: false, error: { message: 'timeout', at: step } }));
  process.exit(2);
}, params.timeoutMs || 60000);

async function main() {
  const size = Math.round((params.sizeMiB || 20) * 1024 * 1024);
  const data = crypto.randomBytes(size);
  const digest = crypto.createHash('sha256').update(data).digest('hex');
  step = 'connect';
  const conn = await mysql.createConnection({
    host: params.host,
    port: params.port,
    user: params.user,
    password: params.password,
    database: params.database,
    connectTimeout: 10000,
  });
  const t = params.table;
  step = 'create';
  await conn.query(`CREATE TABLE ${t} (id INT PRIMARY KEY, b LONGBLOB)`);
  step = 'insert';
  await conn.execute(`INSERT INTO ${t} (id, b) VALUES (?, ?)`, [1, data]);
  step = 'execute-select';
  let [rows] = await conn.execute(`SELECT b FROM ${t} WHERE id = ?`, [1]);
  const executeMatch = rows.length === 1 && Buffer.compare(rows[0].b, data) === 0;
  step = 'query-select';
  [rows] = await conn.query(`SELECT b, LENGTH(b) AS n, SHA2(b, 256) AS h FROM ${t} WHERE id = 1`);
  const queryMatch = rows.length === 1 && Buffer.compare(rows[0].b, data) === 0;
  const serverLen = Number(rows[0].n);
  const serverSha = rows[0].h;
  step = 'end';
  await conn.end();
  return { len: size, sha256: digest, serverLen, serverSha, executeMatch, queryMatch };
}

main()
  .then((r) => {
    clearTimeout(watchdog);
    console.log(JSON.stringify({ ok: true, ...r }));
    process.exit(0);
  })
  .catch((err) => {
    clearTimeout(watchdog);
    console.log(
      JSON.stringify({
        ok: false,
        step,
        error: {
          errno: err.errno === undefined ? null : err.errno,
          code: err.code || null,
          message: err.sqlMessage || err.message || String(err),
        },
      })
    );
    process.exit(1);
  });
