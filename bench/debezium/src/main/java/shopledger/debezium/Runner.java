package shopledger.debezium;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The Debezium runner: Debezium's own connector run by debezium-embedded and
 * published through Kafka's stock JsonConverter, as a Kafka Connect worker
 * would (capture), and Kafka's JsonConverter plus Connect transforms applied
 * to a topic, as a sink connector would see it (sink). `make compat` uses
 * both to hold the cdc-producer to Debezium's output; the peer benchmark
 * uses capture to time Debezium on the same load.
 */
public final class Runner {
    static final String USAGE = String.join("\n",
        "usage: java -jar debezium-runner.jar capture|sink [options]",
        "",
        "capture: run Debezium's MariaDB (or MySQL) connector and publish every record",
        "  --connector mariadb|mysql      the connector (default mariadb)",
        "  --host H --port N --user U --password P   the server",
        "  --database DB                  database.include.list",
        "  --tables a,b                   table.include.list (unqualified names are taken in DB)",
        "  --server-id N                  database.server.id (default 5400)",
        "  --topic-prefix P               topic.prefix (default shop)",
        "  --snapshot-mode M              snapshot.mode (default initial)",
        "  --offsets FILE                 keep offsets and schema history in FILE and FILE.history",
        "                                 (default: in memory, a fresh snapshot every run)",
        "  --kafka HOST:PORT              publish to Kafka (acks=all), creating missing topics as Kafka",
        "                                 Connect's topic.creation does; without it, JSON lines on stdout:",
        "                                 {\"topic\":..,\"key\":..,\"value\":..}",
        "  --topic-partitions N --topic-replication N   of the topics it creates (default 1, 1)",
        "  --schemas true|false           JsonConverter schemas.enable for keys and values (default false)",
        "  --producer k=v                 a Kafka producer property (repeatable)",
        "  --set k=v                      any connector or engine property, transforms included",
        "                                 (repeatable; decimal.handling.mode defaults to string)",
        "  --max-records N                stop after N records",
        "  --idle-exit DURATION           stop once no record came for DURATION after the first (e.g. 10s)",
        "  --stats-interval DURATION      print records and records/s to stderr every DURATION",
        "",
        "sink: read topics from the start as a sink connector sees them and print the records",
        "  --kafka HOST:PORT --topics a,b",
        "  --schemas true|false           JsonConverter schemas.enable of the topics (default true)",
        "  --set k=v                      transforms.* properties (default: transforms=unwrap with",
        "                                 io.debezium.transforms.ExtractNewRecordState)",
        "  --idle-exit DURATION           stop once no record came for DURATION (default 5s)",
        "  Prints {\"topic\",\"partition\",\"offset\",\"key\",\"value\"} per record after the transforms,",
        "  key and value as JsonConverter writes them with schemas.enable=true (null for a tombstone),",
        "  or {\"topic\",..,\"error\"} for a record the converter or a transform refused.");

    private Runner() {}

    public static void main(String[] args) throws Exception {
        if (args.length == 0 || args[0].equals("-h") || args[0].equals("--help")) {
            System.err.println(USAGE);
            System.exit(args.length == 0 ? 2 : 0);
        }
        Options o;
        try {
            o = Options.parse(args, 1);
        } catch (IllegalArgumentException e) {
            System.err.println("debezium-runner: " + e.getMessage() + "\n\n" + USAGE);
            System.exit(2);
            return;
        }
        int code;
        switch (args[0]) {
            case "capture":
                code = new Capture(o).run();
                break;
            case "sink":
                code = new Sink(o).run();
                break;
            default:
                System.err.println("debezium-runner: unknown command " + args[0] + "\n\n" + USAGE);
                code = 2;
        }
        System.exit(code);
    }

    /** Options are --name value pairs; --set and --producer repeat. */
    static final class Options {
        final Map<String, String> single = new LinkedHashMap<>();
        final Map<String, String> set = new LinkedHashMap<>();
        final Map<String, String> producer = new LinkedHashMap<>();

        static Options parse(String[] args, int from) {
            Options o = new Options();
            for (int i = from; i < args.length; i += 2) {
                String name = args[i];
                if (!name.startsWith("--") || i + 1 >= args.length) {
                    throw new IllegalArgumentException("expected --name value, got " + name);
                }
                String value = args[i + 1];
                switch (name) {
                    case "--set":
                        put(o.set, value);
                        break;
                    case "--producer":
                        put(o.producer, value);
                        break;
                    default:
                        o.single.put(name.substring(2), value);
                }
            }
            return o;
        }

        private static void put(Map<String, String> m, String kv) {
            int eq = kv.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("expected key=value, got " + kv);
            }
            m.put(kv.substring(0, eq), kv.substring(eq + 1));
        }

        String get(String name, String def) {
            return single.getOrDefault(name, def);
        }

        String need(String name) {
            String v = single.get(name);
            if (v == null) {
                throw new IllegalArgumentException("--" + name + " is required");
            }
            return v;
        }

        List<String> list(String name) {
            List<String> out = new ArrayList<>();
            String v = single.get(name);
            if (v != null) {
                for (String s : v.split(",")) {
                    if (!s.isBlank()) {
                        out.add(s.trim());
                    }
                }
            }
            return out;
        }

        /** Parses 500ms, 10s, 2m; 0 when absent. */
        long millis(String name) {
            String v = single.get(name);
            if (v == null) {
                return 0;
            }
            if (v.endsWith("ms")) {
                return Long.parseLong(v.substring(0, v.length() - 2));
            }
            if (v.endsWith("s")) {
                return (long) (Double.parseDouble(v.substring(0, v.length() - 1)) * 1000);
            }
            if (v.endsWith("m")) {
                return (long) (Double.parseDouble(v.substring(0, v.length() - 1)) * 60_000);
            }
            throw new IllegalArgumentException("--" + name + ": a duration such as 500ms, 10s or 2m, got " + v);
        }
    }
}
