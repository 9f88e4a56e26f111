package capture

// arena hands out byte slices cut from large chunks, so that encoding
// allocates once per chunk rather than once per message. A slice handed
// out stays valid: a chunk is never written again below what it handed
// out, until its user recycles it (recycle): then the arena collects the
// chunks it filled, and the user hands each back through free once every
// message cut from it is done with (the publisher does, once it copied
// them into record batches), which saves the garbage collector a million
// rows' worth of chunks.
type arena struct {
	b       []byte
	free    chan []byte // nil: chunks are not recycled
	retired [][]byte    // the chunks filled since the last take
}

// arenaChunk is the size of a chunk.
const arenaChunk = 256 << 10

// recycle has the arena take its chunks from free and collect the chunks
// it filled, for take.
func (a *arena) recycle(free chan []byte) { a.free = free }

// start returns an empty slice to append a message of about n bytes to.
func (a *arena) start(n int) []byte {
	if cap(a.b)-len(a.b) < n {
		if a.free != nil && a.b != nil {
			a.retired = append(a.retired, a.b)
		}
		a.b = nil
		if a.free != nil && n <= arenaChunk {
			select {
			case c := <-a.free:
				a.b = c[:0]
			default:
			}
		}
		if a.b == nil {
			a.b = make([]byte, 0, max(arenaChunk, 2*n))
		}
	}
	return a.b[len(a.b):len(a.b)]
}

// done takes m, appended to a slice from start, and returns it with its
// capacity cut, so that no later append reaches into what follows.
func (a *arena) done(m []byte) []byte {
	rest := a.b[len(a.b):cap(a.b)]
	if len(m) > 0 && len(m) <= len(rest) && &rest[0] == &m[0] {
		a.b = a.b[:len(a.b)+len(m)]
	}
	return m[:len(m):len(m)]
}

// take returns the chunks filled since the last take: the messages cut
// from them are all among those handed out since the take before.
func (a *arena) take() [][]byte {
	r := a.retired
	a.retired = nil
	return r
}

// putChunks hands chunks back to free, as many as it has room for.
func putChunks(free chan []byte, chunks [][]byte) {
	for _, c := range chunks {
		if cap(c) != arenaChunk {
			continue
		}
		select {
		case free <- c:
		default:
			return
		}
	}
}
