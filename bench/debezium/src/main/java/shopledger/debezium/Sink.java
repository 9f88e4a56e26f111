package shopledger.debezium;

import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.transforms.Transformation;

/**
 * Reads topics from the start the way a sink connector (the JDBC sink, say)
 * sees them: each message through Kafka's JsonConverter into Connect data,
 * then through the configured transforms (by default Debezium's
 * ExtractNewRecordState), and prints what comes out. A message the
 * converter or a transform refuses is printed with its error.
 */
final class Sink {
    private final Runner.Options o;

    Sink(Runner.Options o) {
        this.o = o;
    }

    int run() throws Exception {
        boolean schemas = Boolean.parseBoolean(o.get("schemas", "true"));
        JsonConverter keyIn = Capture.converter(schemas, true);
        JsonConverter valueIn = Capture.converter(schemas, false);
        JsonConverter keyOut = Capture.converter(true, true);
        JsonConverter valueOut = Capture.converter(true, false);
        List<Transformation<SinkRecord>> chain = transforms();
        long idle = o.single.containsKey("idle-exit") ? o.millis("idle-exit") : 5000;
        PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);

        Properties p = new Properties();
        p.setProperty(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, o.need("kafka"));
        p.setProperty(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            List<TopicPartition> parts = new ArrayList<>();
            for (String t : o.list("topics")) {
                List<PartitionInfo> infos = c.listTopics(Duration.ofSeconds(30)).get(t);
                if (infos == null || infos.isEmpty()) {
                    System.err.println("debezium-runner: no topic " + t + ": skipped");
                    continue;
                }
                for (PartitionInfo i : infos) {
                    parts.add(new TopicPartition(t, i.partition()));
                }
            }
            c.assign(parts);
            c.seekToBeginning(parts);
            Map<TopicPartition, Long> end = c.endOffsets(parts);
            long last = System.currentTimeMillis();
            while (!reached(c, end) && System.currentTimeMillis() - last < idle) {
                for (ConsumerRecord<byte[], byte[]> m : c.poll(Duration.ofMillis(200))) {
                    last = System.currentTimeMillis();
                    String where = "{\"topic\":\"" + m.topic() + "\",\"partition\":" + m.partition() + ",\"offset\":" + m.offset();
                    try {
                        SchemaAndValue k = keyIn.toConnectData(m.topic(), m.key());
                        SchemaAndValue v = valueIn.toConnectData(m.topic(), m.value());
                        SinkRecord r = new SinkRecord(m.topic(), m.partition(), k.schema(), k.value(), v.schema(), v.value(), m.offset());
                        for (Transformation<SinkRecord> t : chain) {
                            if (r != null) {
                                r = t.apply(r);
                            }
                        }
                        if (r == null) {
                            out.print(where + ",\"dropped\":true}\n");
                            continue;
                        }
                        byte[] kb = keyOut.fromConnectData(r.topic(), r.keySchema(), r.key());
                        byte[] vb = valueOut.fromConnectData(r.topic(), r.valueSchema(), r.value());
                        out.print(where + ",\"key\":" + text(kb) + ",\"value\":" + text(vb) + "}\n");
                    } catch (RuntimeException e) {
                        out.print(where + ",\"error\":" + quote(e.toString()) + "}\n");
                    }
                }
            }
            out.flush();
            if (!reached(c, end)) {
                System.err.println("debezium-runner: sink stopped idle before the end offsets " + end);
                return 1;
            }
        }
        return 0;
    }

    private static boolean reached(KafkaConsumer<byte[], byte[]> c, Map<TopicPartition, Long> end) {
        for (Map.Entry<TopicPartition, Long> e : end.entrySet()) {
            if (c.position(e.getKey()) < e.getValue()) {
                return false;
            }
        }
        return true;
    }

    @SuppressWarnings("unchecked")
    private List<Transformation<SinkRecord>> transforms() throws Exception {
        Map<String, String> set = new HashMap<>(o.set);
        if (!set.containsKey("transforms")) {
            set.put("transforms", "unwrap");
            set.put("transforms.unwrap.type", "io.debezium.transforms.ExtractNewRecordState");
        }
        List<Transformation<SinkRecord>> chain = new ArrayList<>();
        for (String name : set.get("transforms").split(",")) {
            name = name.trim();
            if (name.isEmpty()) {
                continue;
            }
            String prefix = "transforms." + name + ".";
            String type = set.get(prefix + "type");
            if (type == null) {
                throw new IllegalArgumentException(prefix + "type is not set");
            }
            Map<String, String> cfg = new HashMap<>();
            for (Map.Entry<String, String> e : set.entrySet()) {
                if (e.getKey().startsWith(prefix) && !e.getKey().equals(prefix + "type")) {
                    cfg.put(e.getKey().substring(prefix.length()), e.getValue());
                }
            }
            Transformation<SinkRecord> t = (Transformation<SinkRecord>) Class.forName(type).getDeclaredConstructor().newInstance();
            t.configure(cfg);
            chain.add(t);
        }
        return chain;
    }

    private static String text(byte[] b) {
        return b == null ? "null" : new String(b, StandardCharsets.UTF_8);
    }

    private static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char ch : s.toCharArray()) {
            if (ch == '"' || ch == '\\') {
                b.append('\\').append(ch);
            } else if (ch < 0x20) {
                b.append(String.format("\\u%04x", (int) ch));
            } else {
                b.append(ch);
            }
        }
        return b.append('"').toString();
    }
}
