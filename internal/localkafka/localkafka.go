// Package localkafka installs Apache Kafka and runs it locally in KRaft mode,
// each node both broker and controller, as one broker or a small cluster,
// for the local stack (`make run BROKER=kafka`) and for integration tests.
// A cluster keeps its data in its own directory, so a second start resumes
// on the same data.
package localkafka
