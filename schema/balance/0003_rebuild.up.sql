-- Where each partition of the dead-letter topic ended when the last rebuild
-- began. The rebuild consumes every change again, applying those that decode
-- now and sending the others to the dead-letter topic again, so the dead
-- letters before these offsets are out of date: replay-dead-letters starts
-- here (applying one of them would apply its change twice).
CREATE TABLE consumer_dead_letter_start (
  topic           VARCHAR(255) NOT NULL,
  kafka_partition INT          NOT NULL,
  kafka_offset    BIGINT       NOT NULL,
  PRIMARY KEY (topic, kafka_partition)
);
