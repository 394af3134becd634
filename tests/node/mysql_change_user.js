'use strict';
// node mysql_change_user.js '<json>'  — COM_CHANGE_USER through wirepool with mysql2's changeUser().
//
// JSON: {host, port, user, password, database, user2, password2, database2, timeoutMs?}
// Logs in as `user`, leaves session state behind (a user variable, sql_mode, an open
// transaction), changes to `user2` / `database2`, reports what that session sees, runs query()
// and execute() there, changes back, and finally tries a wrong password. Prints one JSON line
//   {"ok": true, "first": {...}, "second": {...}, "back": {...}, "wrong": {...}}   exit 0
//   {"ok": false, "step": "...", "error": {...}}                                   exit 1
// and exits 2 after timeoutMs (default 30 s).
const mysql = require('mysql2/promise');

const params = JSON.parse(process.argv[2] || '{}');
let step = 'start';

const watchdog = setTimeout(() => {
  console.log(JSON.stringify({ ok: false, error: { message: 'timeout', at: step } }));
  process.exit(2);
}, params.timeoutMs || 30000);

async function session(conn) {
  const [rows] = await conn.query(
    'SELECT CURRENT_USER() AS user, DATABASE() AS db, @v AS v, @@session.sql_mode AS mode, ' +
      '@@in_transaction AS tx'
  );
  const [prepared] = await conn.execute('SELECT ? + ? AS sum', [40, 2]);
  return { ...rows[0], sum: Number(prepared[0].sum) };
}

async function main() {
  step = 'connect';
  const conn = await mysql.createConnection({
    host: params.host,
    port: params.port,
    user: params.user,
    password: params.password,
    database: params.database,
    connectTimeout: 10000,
  });
  step = 'dirty';
  await conn.query("SET @v = 42, SESSION sql_mode = 'ANSI_QUOTES'");
  await conn.query('BEGIN');
  const first = await session(conn);
  step = 'change';
  await conn.changeUser({ user: params.user2, password: params.password2, database: params.database2 });
  const second = await session(conn);
  step = 'change-back';
  await conn.changeUser({ user: params.user, password: params.password, database: params.database });
  const back = await session(conn);
  step = 'wrong';
  let wrong = null;
  try {
    await conn.changeUser({ user: params.user2, password: 'not-the-password' });
    wrong = { accepted: true };
  } catch (err) {
    wrong = { errno: err.errno === undefined ? null : err.errno, message: err.sqlMessage || err.message };
  }
  conn.destroy();
  return { first, second, back, wrong };
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
