package capture

// Checkpoint barriers: a checkpoint queued behind the last batch of each
// partition written to since the one before, saved once they are all
// acknowledged (and superseded, unsaved, by a later one acknowledged by
// then).

// barrier is a checkpoint and the batches that must be acknowledged
// before it is saved.
type barrier struct {
	cp    Checkpoint
	after []*recordBatch
}

// checkpoint queues cp behind the batches written to since the last one.
func (p *publisher) checkpoint(cp Checkpoint) error {
	bar := barrier{cp: cp}
	for _, part := range p.dirty {
		part.mu.Lock()
		if part.last != nil {
			bar.after = append(bar.after, part.last)
		}
		part.mu.Unlock()
		part.dirty = false
	}
	p.dirty = p.dirty[:0]
	p.kick(false) // the checkpoint waits for them
	select {
	case p.barriers <- bar:
		return nil
	case <-p.ctx.Done():
		return nil
	}
}

// save saves each checkpoint once its batches are acknowledged.
func (p *publisher) save() error {
	var next *barrier
	for {
		bar, ok := p.nextBarrier(&next)
		if !ok {
			return nil
		}
		if err := p.await(bar); err != nil {
			return err
		}
		// Checkpoints whose batches are acknowledged already supersede it.
		for next == nil {
			nx, ok := p.pollBarrier()
			if !ok {
				break
			}
			if p.acknowledged(nx) {
				bar = nx
			} else {
				next = &nx
			}
		}
		if err := p.cps.Save(p.ctx, bar.cp); err != nil {
			return err
		}
		p.saved(bar.cp)
	}
}

// nextBarrier returns *next if set (clearing it), else the next barrier
// queued, waiting for it; false once they are all done.
func (p *publisher) nextBarrier(next **barrier) (barrier, bool) {
	if *next != nil {
		bar := **next
		*next = nil
		return bar, true
	}
	select {
	case bar, ok := <-p.barriers:
		return bar, ok
	case <-p.ctx.Done():
		return barrier{}, false
	}
}

// pollBarrier returns the next barrier if one is queued.
func (p *publisher) pollBarrier() (barrier, bool) {
	select {
	case bar, ok := <-p.barriers:
		return bar, ok
	default:
		return barrier{}, false
	}
}

// await waits for bar's batches and returns the first one's error.
func (p *publisher) await(bar barrier) error {
	for _, b := range bar.after {
		select {
		case <-b.done:
		case <-p.ctx.Done():
			if p.err != nil {
				return p.err
			}
			return p.ctx.Err()
		}
		if b.err != nil {
			return b.err
		}
	}
	return nil
}

// acknowledged reports whether bar's batches are all acknowledged.
func (p *publisher) acknowledged(bar barrier) bool {
	for _, b := range bar.after {
		select {
		case <-b.done:
			if b.err != nil {
				return false
			}
		default:
			return false
		}
	}
	return true
}
