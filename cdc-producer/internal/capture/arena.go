package capture

// arena hands out byte slices cut from large chunks, so that encoding
// allocates once per chunk rather than once per message. A slice handed
// out stays valid: a chunk is never written again below what it handed
// out, and the GC frees it with its last message.
type arena struct{ b []byte }

// arenaChunk is the size of a chunk.
const arenaChunk = 256 << 10

// start returns an empty slice to append a message of about n bytes to.
func (a *arena) start(n int) []byte {
	if cap(a.b)-len(a.b) < n {
		a.b = make([]byte, 0, max(arenaChunk, 2*n))
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
