package push

import (
	"context"
	"sync"
)

// docLocks let one push of a document at a time convert and write it.
// Pushes of other documents do not wait for each other.
type docLocks struct {
	mu sync.Mutex
	m  map[string]*docLock
}

// docLock is the lock of one document: holding it is having sent to ch.
// refs counts the pushes holding or waiting for it; the last one removes
// it from the map and gives it back to docLockPool.
type docLock struct {
	ch   chan struct{}
	refs int
}

var docLockPool = sync.Pool{New: func() any { return &docLock{ch: make(chan struct{}, 1)} }}

// lock waits until no other push of the document id holds its lock, or
// until ctx ends (the error is then ctx's). The caller gives a lock it
// got back with unlock. An empty id locks nothing (nil).
func (l *docLocks) lock(ctx context.Context, id string) (*docLock, error) {
	if id == "" {
		return nil, nil
	}
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*docLock{}
	}
	dl := l.m[id]
	if dl == nil {
		dl = docLockPool.Get().(*docLock)
		l.m[id] = dl
	}
	dl.refs++
	l.mu.Unlock()
	select {
	case dl.ch <- struct{}{}:
		return dl, nil
	case <-ctx.Done():
		l.drop(id, dl)
		return nil, ctx.Err()
	}
}

// unlock releases dl, the lock of id that lock returned.
func (l *docLocks) unlock(id string, dl *docLock) {
	if dl != nil {
		<-dl.ch
		l.drop(id, dl)
	}
}

func (l *docLocks) drop(id string, dl *docLock) {
	l.mu.Lock()
	dl.refs--
	last := dl.refs == 0
	if last {
		delete(l.m, id)
	}
	l.mu.Unlock()
	if last {
		docLockPool.Put(dl) // nobody holds or waits for it: its channel is empty
	}
}
