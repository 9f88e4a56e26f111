package capture

// Record batches: the publisher lays its messages out in Kafka's record
// batch format (v2, the only one brokers since 0.11 write) per topic
// partition as they come, and a produce request carries those bytes as
// they are (kafka-go's RawProduce). kafka-go's Writer did the same work at
// about three times the CPU: a metadata lookup and a copy of the whole
// Message per message, and the records encoded once more into its request
// buffers.

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math/bits"
	"time"

	"github.com/segmentio/kafka-go"
)

// maxBatchBytes bounds a record batch: under the broker's default
// message.max.bytes (1 MiB), as the Writer's BatchBytes did.
const maxBatchBytes = 1_000_000

// The layout of a produce request's record set: its size, then the batch
// header (Kafka's DefaultRecordBatch), then the records.
const (
	offLength     = 4 + 8  // batch length: the bytes after this field
	offCRC        = 4 + 17 // CRC-32C of everything after this field
	offAttributes = 4 + 21
	offLastDelta  = 4 + 23
	offFirstTime  = 4 + 27
	offMaxTime    = 4 + 35
	offCount      = 4 + 57
	headerSize    = 4 + 61
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recordBatch is one partition's batch of records: open while the
// publisher adds to it, then sealed and sent once.
type recordBatch struct {
	buf            []byte // the record set: size, header, records
	n              int    // records
	first, maxTime int64  // timestamps, ms
	zipped         bool   // buf holds the compressed records (from zbufs)
	done           chan struct{}
	err            error // set before done is closed
}

// batchBufs recycles the batches' buffers once Kafka acknowledged them:
// as many as batches may be open or in flight at once, kept across
// garbage collections (a sync.Pool drops them at each, and a million rows
// had them grown again hundreds of times). The records' buffers and the
// compressed ones have a pool each, so that each keeps its size.
type batchBufs chan []byte

// get returns an empty buffer.
func (p batchBufs) get() []byte {
	select {
	case b := <-p:
		return b[:0]
	default:
		return make([]byte, 0, 64<<10)
	}
}

// put takes b back, unless it holds enough already.
func (p batchBufs) put(b []byte) {
	select {
	case p <- b:
	default:
	}
}

func newRecordBatch(buf []byte, now time.Time) *recordBatch {
	b := &recordBatch{buf: append(buf, make([]byte, headerSize)...), first: now.UnixMilli(), done: make(chan struct{})}
	b.maxTime = b.first
	return b
}

// fits reports whether m can join the batch: always into an empty one.
func (b *recordBatch) fits(m *kafka.Message) bool {
	return b.n == 0 || len(b.buf)+recordSize(m)+16 <= maxBatchBytes
}

// recordSize is about what m takes in a batch (without the few bytes of
// its length, time and offset).
func recordSize(m *kafka.Message) int {
	n := len(m.Key) + len(m.Value) + 8
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value) + 4
	}
	return n
}

// add appends m as a record, timed ts (ms).
func (b *recordBatch) add(m *kafka.Message, ts int64) {
	delta, off := ts-b.first, int64(b.n)
	size := 1 + varintSize(delta) + varintSize(off) + bytesSize(m.Key) + bytesSize(m.Value) + varintSize(int64(len(m.Headers)))
	for _, h := range m.Headers {
		size += varintSize(int64(len(h.Key))) + len(h.Key) + bytesSize(h.Value)
	}
	buf := binary.AppendVarint(b.buf, int64(size))
	buf = append(buf, 0) // attributes: none
	buf = binary.AppendVarint(buf, delta)
	buf = binary.AppendVarint(buf, off)
	buf = appendBytes(buf, m.Key)
	buf = appendBytes(buf, m.Value)
	buf = binary.AppendVarint(buf, int64(len(m.Headers)))
	for _, h := range m.Headers {
		buf = binary.AppendVarint(buf, int64(len(h.Key)))
		buf = append(buf, h.Key...)
		buf = appendBytes(buf, h.Value)
	}
	b.buf = buf
	b.n++
	b.maxTime = max(b.maxTime, ts)
}

// seal fills in the header: after it the batch is only read. codec
// compresses the records (nil: none) into a buffer from zbufs, and the
// records' buffer goes back to bufs.
func (b *recordBatch) seal(codec kafka.CompressionCodec, bufs, zbufs batchBufs) {
	var attributes int16
	if codec != nil {
		z := bytes.NewBuffer(append(zbufs.get(), b.buf[:headerSize]...))
		w := codec.NewWriter(z)
		w.Write(b.buf[headerSize:])
		w.Close()
		bufs.put(b.buf)
		b.buf, b.zipped = z.Bytes(), true
		attributes = int16(codec.Code())
	}
	h := b.buf
	binary.BigEndian.PutUint32(h[0:], uint32(len(h)-4))
	binary.BigEndian.PutUint64(h[4:], 0) // base offset: the broker's to assign
	binary.BigEndian.PutUint32(h[offLength:], uint32(len(h)-offLength-4))
	binary.BigEndian.PutUint32(h[4+12:], 0xffffffff) // partition leader epoch: none
	h[4+16] = 2                                      // magic
	binary.BigEndian.PutUint16(h[offAttributes:], uint16(attributes))
	binary.BigEndian.PutUint32(h[offLastDelta:], uint32(b.n-1))
	binary.BigEndian.PutUint64(h[offFirstTime:], uint64(b.first))
	binary.BigEndian.PutUint64(h[offMaxTime:], uint64(b.maxTime))
	binary.BigEndian.PutUint64(h[4+43:], 0xffffffffffffffff) // producer id: none
	binary.BigEndian.PutUint16(h[4+51:], 0xffff)             // producer epoch: none
	binary.BigEndian.PutUint32(h[4+53:], 0xffffffff)         // base sequence: none
	binary.BigEndian.PutUint32(h[offCount:], uint32(b.n))
	binary.BigEndian.PutUint32(h[offCRC:], crc32.Checksum(h[offAttributes:], castagnoli))
}

// varintSize is the length of x as a zig-zag varint (Kafka's, and
// encoding/binary's).
func varintSize(x int64) int {
	ux := uint64(x)<<1 ^ uint64(x>>63)
	return (bits.Len64(ux|1) + 6) / 7
}

// bytesSize is the length of b as Kafka's nullable varint-prefixed bytes.
func bytesSize(b []byte) int {
	if b == nil {
		return 1
	}
	return varintSize(int64(len(b))) + len(b)
}

func appendBytes(buf, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(buf, -1)
	}
	buf = binary.AppendVarint(buf, int64(len(b)))
	return append(buf, b...)
}
