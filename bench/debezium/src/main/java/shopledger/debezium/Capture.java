package shopledger.debezium;

import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.source.SourceRecord;

import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.RecordChangeEvent;
import io.debezium.engine.format.ChangeEventFormat;
import io.debezium.embedded.Connect;

/**
 * Runs Debezium's connector in debezium-embedded and publishes each record
 * as a Kafka Connect source worker does: key and value through JsonConverter,
 * to the record's topic (after any transforms), acks=all, offsets committed
 * only after Kafka acknowledged the batch.
 */
final class Capture {
    private final Runner.Options o;
    private final AtomicLong records = new AtomicLong();
    private final AtomicLong lastRecord = new AtomicLong();
    private final CountDownLatch stop = new CountDownLatch(1);
    private final AtomicReference<Throwable> failure = new AtomicReference<>();

    Capture(Runner.Options o) {
        this.o = o;
    }

    Properties properties() {
        Properties p = new Properties();
        String connector = o.get("connector", "mariadb");
        switch (connector) {
            case "mariadb":
                p.setProperty("connector.class", "io.debezium.connector.mariadb.MariaDbConnector");
                break;
            case "mysql":
                p.setProperty("connector.class", "io.debezium.connector.mysql.MySqlConnector");
                break;
            default:
                throw new IllegalArgumentException("--connector must be mariadb or mysql, got " + connector);
        }
        String db = o.need("database");
        p.setProperty("name", "debezium-runner");
        p.setProperty("database.hostname", o.get("host", "127.0.0.1"));
        p.setProperty("database.port", o.need("port"));
        p.setProperty("database.user", o.need("user"));
        p.setProperty("database.password", o.get("password", ""));
        p.setProperty("database.server.id", o.get("server-id", "5400"));
        p.setProperty("database.include.list", db);
        List<String> tables = new ArrayList<>();
        for (String t : o.list("tables")) {
            tables.add(t.contains(".") ? t : db + "." + t);
        }
        if (!tables.isEmpty()) {
            p.setProperty("table.include.list", String.join(",", tables));
        }
        p.setProperty("topic.prefix", o.get("topic-prefix", "shop"));
        p.setProperty("snapshot.mode", o.get("snapshot-mode", "initial"));
        p.setProperty("decimal.handling.mode", "string");
        String offsets = o.single.get("offsets");
        if (offsets != null) {
            p.setProperty("offset.storage", "org.apache.kafka.connect.storage.FileOffsetBackingStore");
            p.setProperty("offset.storage.file.filename", offsets);
            p.setProperty("schema.history.internal", "io.debezium.storage.file.history.FileSchemaHistory");
            p.setProperty("schema.history.internal.file.filename", offsets + ".history");
        } else {
            p.setProperty("offset.storage", "org.apache.kafka.connect.storage.MemoryOffsetBackingStore");
            p.setProperty("schema.history.internal", "io.debezium.relational.history.MemorySchemaHistory");
        }
        p.setProperty("offset.flush.interval.ms", "1000");
        p.putAll(o.set);
        return p;
    }

    int run() throws Exception {
        Properties props = properties();
        boolean schemas = Boolean.parseBoolean(o.get("schemas", "false"));
        JsonConverter keys = converter(schemas, true);
        JsonConverter values = converter(schemas, false);
        long max = Long.parseLong(o.get("max-records", "0"));
        String kafka = o.single.get("kafka");
        KafkaProducer<byte[], byte[]> producer = kafka == null ? null : producer(kafka);
        Admin admin = kafka == null ? null : Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, kafka));
        Set<String> topics = new HashSet<>();
        int partitions = Integer.parseInt(o.get("topic-partitions", "1"));
        short replication = Short.parseShort(o.get("topic-replication", "1"));
        PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);

        DebeziumEngine.ChangeConsumer<RecordChangeEvent<SourceRecord>> sink = (batch, committer) -> {
            List<Future<RecordMetadata>> acks = new ArrayList<>();
            for (RecordChangeEvent<SourceRecord> e : batch) {
                SourceRecord r = e.record();
                byte[] k = keys.fromConnectData(r.topic(), r.keySchema(), r.key());
                byte[] v = values.fromConnectData(r.topic(), r.valueSchema(), r.value());
                if (producer != null) {
                    if (topics.add(r.topic())) {
                        create(admin, r.topic(), partitions, replication);
                    }
                    acks.add(producer.send(new ProducerRecord<>(r.topic(), null, k, v)));
                } else {
                    out.print("{\"topic\":\"" + r.topic() + "\",\"key\":" + json(k) + ",\"value\":" + json(v) + "}\n");
                }
            }
            try {
                for (Future<RecordMetadata> f : acks) {
                    f.get();
                }
            } catch (Exception ex) {
                failure.compareAndSet(null, ex);
                stop.countDown();
                throw new InterruptedException("publish: " + ex);
            }
            out.flush();
            for (RecordChangeEvent<SourceRecord> e : batch) {
                committer.markProcessed(e);
            }
            committer.markBatchFinished();
            long n = records.addAndGet(batch.size());
            lastRecord.set(System.currentTimeMillis());
            if (max > 0 && n >= max) {
                stop.countDown();
            }
        };
        DebeziumEngine<RecordChangeEvent<SourceRecord>> engine = DebeziumEngine.create(ChangeEventFormat.of(Connect.class))
            .using(props)
            .notifying(sink)
            .using((success, message, error) -> {
                if (!success) {
                    failure.compareAndSet(null, error != null ? error : new RuntimeException(message));
                }
                stop.countDown();
            })
            .build();
        ExecutorService exec = Executors.newSingleThreadExecutor();
        Runtime.getRuntime().addShutdownHook(new Thread(stop::countDown));
        long start = System.currentTimeMillis();
        exec.execute(engine);
        watch(start);
        close(engine);
        exec.shutdown();
        exec.awaitTermination(30, TimeUnit.SECONDS);
        if (producer != null) {
            producer.close();
            admin.close();
        }
        out.flush();
        long took = System.currentTimeMillis() - start;
        System.err.printf("debezium-runner: %d records in %.1f s%n", records.get(), took / 1000.0);
        Throwable f = failure.get();
        if (f != null) {
            System.err.println("debezium-runner: " + f);
            f.printStackTrace();
            return 1;
        }
        return 0;
    }

    /** Closes the engine, waiting for its tasks to have started if they are starting. */
    private static void close(DebeziumEngine<?> engine) throws Exception {
        for (int attempt = 0; ; attempt++) {
            try {
                engine.close();
                return;
            } catch (IllegalStateException e) {
                if (attempt == 120) {
                    throw e;
                }
                Thread.sleep(250);
            }
        }
    }

    /** Waits for a stop: max records, idle, a signal, or the engine's end; prints stats meanwhile. */
    private void watch(long start) throws InterruptedException {
        long idle = o.millis("idle-exit");
        long every = o.millis("stats-interval");
        long lastStats = start;
        long lastCount = 0;
        while (!stop.await(100, TimeUnit.MILLISECONDS)) {
            long now = System.currentTimeMillis();
            long last = lastRecord.get();
            if (idle > 0 && last > 0 && now - last >= idle) {
                return;
            }
            if (every > 0 && now - lastStats >= every) {
                long n = records.get();
                System.err.printf("debezium-runner: %d records, %.0f records/s%n", n, (n - lastCount) * 1000.0 / (now - lastStats));
                lastStats = now;
                lastCount = n;
            }
        }
    }

    private static String json(byte[] b) {
        return b == null ? "null" : new String(b, StandardCharsets.UTF_8);
    }

    /** Creates topic unless it exists, as Kafka Connect's topic.creation does. */
    private static void create(Admin admin, String topic, int partitions, short replication) {
        try {
            admin.createTopics(List.of(new NewTopic(topic, partitions, replication))).all().get();
        } catch (ExecutionException e) {
            if (!(e.getCause() instanceof org.apache.kafka.common.errors.TopicExistsException)) {
                throw new RuntimeException("create topic " + topic, e.getCause());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new RuntimeException("create topic " + topic, e);
        }
    }

    static JsonConverter converter(boolean schemas, boolean isKey) {
        JsonConverter c = new JsonConverter();
        c.configure(Map.of("schemas.enable", Boolean.toString(schemas), "converter.type", isKey ? "key" : "value"), isKey);
        return c;
    }

    private KafkaProducer<byte[], byte[]> producer(String bootstrap) {
        Properties p = new Properties();
        p.setProperty(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.setProperty(ProducerConfig.ACKS_CONFIG, "all");
        p.setProperty(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        p.setProperty(ProducerConfig.LINGER_MS_CONFIG, "5");
        p.putAll(o.producer);
        return new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer());
    }
}
