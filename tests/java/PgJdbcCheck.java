// java -cp /usr/share/java/postgresql.jar PgJdbcCheck.java <url> <user> <password> <clients> <loops>
//
// pgJDBC through wirepool's transaction pooling with prepareThreshold=1, so that every statement
// is a protocol-level named prepared statement from its first execution (S_1, S_2, ...). Each
// client thread sets a session parameter, then runs prepared selects and a prepared update inside
// transactions, checking every answer and that the parameter stays its own. Prints one line
// "ok executions=N" and exits 0, or prints the first failure and exits 1.
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

public class PgJdbcCheck {
  public static void main(String[] args) throws Exception {
    String url = args[0];
    Properties props = new Properties();
    props.setProperty("user", args[1]);
    props.setProperty("password", args[2]);
    props.setProperty("prepareThreshold", "1");
    int clients = Integer.parseInt(args[3]);
    int loops = Integer.parseInt(args[4]);
    AtomicReference<String> failure = new AtomicReference<>();
    AtomicLong executions = new AtomicLong();
    try (Connection c = DriverManager.getConnection(url, props); Statement s = c.createStatement()) {
      s.execute("CREATE TABLE IF NOT EXISTS jdbc_counts (id int PRIMARY KEY, n int NOT NULL)");
      s.execute("TRUNCATE jdbc_counts");
    }
    List<Thread> threads = new ArrayList<>();
    for (int t = 0; t < clients; t++) {
      final int id = t;
      Thread th = new Thread(() -> {
        try (Connection c = DriverManager.getConnection(url, props)) {
          try (Statement s = c.createStatement()) {
            s.execute("SET work_mem = '" + (id + 1) + "MB'");
          }
          try (PreparedStatement ins = c.prepareStatement("INSERT INTO jdbc_counts VALUES (?, 0)")) {
            ins.setInt(1, id);
            ins.executeUpdate();
          }
          PreparedStatement sum = c.prepareStatement("SELECT ?::int + ?::int, current_setting('work_mem')");
          PreparedStatement upd = c.prepareStatement("UPDATE jdbc_counts SET n = n + 1 WHERE id = ?");
          PreparedStatement get = c.prepareStatement("SELECT n FROM jdbc_counts WHERE id = ?");
          for (int i = 0; i < loops; i++) {
            sum.setInt(1, id);
            sum.setInt(2, i);
            try (ResultSet rs = sum.executeQuery()) {
              rs.next();
              if (rs.getInt(1) != id + i || !rs.getString(2).equals((id + 1) + "MB")) {
                throw new IllegalStateException("client " + id + " got " + rs.getInt(1) + ", "
                    + rs.getString(2) + " at loop " + i);
              }
            }
            c.setAutoCommit(false);
            upd.setInt(1, id);
            upd.executeUpdate();
            get.setInt(1, id);
            try (ResultSet rs = get.executeQuery()) {
              rs.next();
              if (rs.getInt(1) != i + 1) {
                throw new IllegalStateException("client " + id + " count " + rs.getInt(1) + " at loop " + i);
              }
            }
            c.commit();
            c.setAutoCommit(true);
            executions.addAndGet(3);
          }
        } catch (Exception e) {
          failure.compareAndSet(null, e.toString());
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
    System.out.println("ok executions=" + executions.get());
  }
}
