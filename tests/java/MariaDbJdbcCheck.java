// java -cp /usr/share/java/mariadb-java-client.jar MariaDbJdbcCheck.java \
//     <url> <user> <password> <clients> <loops> <counts table> <batch table>
//
// MariaDB Connector/J (Debian libmariadb-java) through wirepool's transaction pooling, with
// useServerPrepStmts=true in the url: every PreparedStatement is a server-side prepared statement
// (COM_STMT_PREPARE, then COM_STMT_EXECUTE with the statement's id), which the proxy prepares
// again on whichever server the client gets. Creates the two tables, then each client thread
// runs, per loop: a shared SELECT with parameters, a SELECT of a text of its own, an UPDATE and a
// SELECT of its own row in a committed transaction, every fourth loop a batch of inserts
// (addBatch / executeBatch) in a transaction, and every seventh an UPDATE rolled back, checking
// every answer. Prints one line "ok executions=N switches=N backends=N" and exits 0, or prints
// the first failure and exits 1.
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

public class MariaDbJdbcCheck {
  static final int BATCH = 5;

  static void expect(boolean ok, String what) {
    if (!ok) {
      throw new IllegalStateException(what);
    }
  }

  static long scalar(PreparedStatement ps) throws Exception {
    try (ResultSet rs = ps.executeQuery()) {
      expect(rs.next(), "no row");
      long v = rs.getLong(1);
      expect(!rs.next(), "more than one row");
      return v;
    }
  }

  public static void main(String[] args) throws Exception {
    String url = args[0];
    String user = args[1];
    String password = args[2];
    int clients = Integer.parseInt(args[3]);
    int loops = Integer.parseInt(args[4]);
    String counts = args[5];
    String batch = args[6];
    AtomicReference<String> failure = new AtomicReference<>();
    AtomicLong executions = new AtomicLong();
    AtomicLong switches = new AtomicLong();
    Set<Long> backends = ConcurrentHashMap.newKeySet();
    try (Connection c = DriverManager.getConnection(url, user, password);
        Statement s = c.createStatement()) {
      s.execute("CREATE TABLE " + counts + " (id INT PRIMARY KEY, n INT NOT NULL)");
      s.execute("CREATE TABLE " + batch + " (client INT NOT NULL, i INT NOT NULL, v VARCHAR(40),"
          + " PRIMARY KEY (client, i))");
    }
    List<Thread> threads = new ArrayList<>();
    for (int t = 0; t < clients; t++) {
      final int id = t;
      Thread th = new Thread(() -> {
        int loop = -1;
        try (Connection c = DriverManager.getConnection(url, user, password)) {
          try (PreparedStatement ins = c.prepareStatement(
                   "INSERT INTO " + counts + " (id, n) VALUES (?, 0)")) {
            ins.setInt(1, id);
            expect(ins.executeUpdate() == 1, "insert of the client's row");
          }
          PreparedStatement sum = c.prepareStatement("SELECT ? + ?, CONNECTION_ID()");
          PreparedStatement own = c.prepareStatement("SELECT ? * " + (id + 1));
          PreparedStatement upd = c.prepareStatement(
              "UPDATE " + counts + " SET n = n + 1 WHERE id = ?");
          PreparedStatement get = c.prepareStatement("SELECT n FROM " + counts + " WHERE id = ?");
          PreparedStatement add = c.prepareStatement(
              "INSERT INTO " + batch + " (client, i, v) VALUES (?, ?, ?)");
          PreparedStatement rows = c.prepareStatement(
              "SELECT COUNT(*), COALESCE(SUM(i), 0) FROM " + batch + " WHERE client = ?");
          long count = 0;
          long batchRows = 0;
          long batchSum = 0;
          long lastBackend = -1;
          for (loop = 0; loop < loops; loop++) {
            sum.setInt(1, id);
            sum.setLong(2, loop);
            try (ResultSet rs = sum.executeQuery()) {
              expect(rs.next(), "sum: no row");
              expect(rs.getLong(1) == id + loop, "sum: got " + rs.getLong(1));
              long backend = rs.getLong(2);
              backends.add(backend);
              if (lastBackend != -1 && backend != lastBackend) {
                switches.incrementAndGet();
              }
              lastBackend = backend;
            }
            own.setInt(1, loop);
            long p = scalar(own);
            expect(p == (long) loop * (id + 1), "own statement: got " + p);
            executions.addAndGet(2);

            c.setAutoCommit(false);
            upd.setInt(1, id);
            expect(upd.executeUpdate() == 1, "update: not one row");
            count++;
            get.setInt(1, id);
            long n = scalar(get);
            expect(n == count, "count in transaction: got " + n + ", want " + count);
            c.commit();
            executions.addAndGet(2);

            if (loop % 4 == 1) {
              for (int b = 0; b < BATCH; b++) {
                int i = loop * BATCH + b;
                add.setInt(1, id);
                add.setInt(2, i);
                add.setString(3, "c" + id + " i" + i + " ✓");
                add.addBatch();
                batchRows++;
                batchSum += i;
              }
              int[] done = add.executeBatch();
              expect(done.length == BATCH, "batch: " + done.length + " results");
              for (int r : done) {
                expect(r == 1 || r == Statement.SUCCESS_NO_INFO, "batch: result " + r);
              }
              c.commit();
              rows.setInt(1, id);
              try (ResultSet rs = rows.executeQuery()) {
                expect(rs.next(), "batch rows: no row");
                expect(rs.getLong(1) == batchRows && rs.getLong(2) == batchSum,
                    "batch rows: got " + rs.getLong(1) + "/" + rs.getLong(2) + ", want "
                        + batchRows + "/" + batchSum);
              }
              c.commit();
              executions.addAndGet(BATCH + 1);
            }
            if (loop % 7 == 3) {
              upd.setInt(1, id);
              expect(upd.executeUpdate() == 1, "update to roll back: not one row");
              c.rollback();
              get.setInt(1, id);
              n = scalar(get);
              expect(n == count, "count after rollback: got " + n + ", want " + count);
              c.commit();
              executions.addAndGet(2);
            }
            c.setAutoCommit(true);
          }
          try (PreparedStatement check = c.prepareStatement(
                   "SELECT v FROM " + batch + " WHERE client = ? AND i = ?")) {
            check.setInt(1, id);
            check.setInt(2, BATCH + 2);
            try (ResultSet rs = check.executeQuery()) {
              expect(rs.next() && rs.getString(1).equals("c" + id + " i" + (BATCH + 2) + " ✓"),
                  "batch row text");
            }
          }
          for (PreparedStatement ps : new PreparedStatement[] {sum, own, upd, get, add, rows}) {
            ps.close();
          }
        } catch (Exception e) {
          failure.compareAndSet(null, "client " + id + " loop " + loop + ": " + e);
        }
      });
      threads.add(th);
      th.start();
    }
    for (Thread th : threads) {
      th.join();
    }
    if (failure.get() != null) {
      System.out.println("failed: " + failure.get());
      System.exit(1);
    }
    System.out.println("ok executions=" + executions.get() + " switches=" + switches.get()
        + " backends=" + backends.size());
  }
}
