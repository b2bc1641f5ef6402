package push

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// The lock of a document is held by one push at a time; pushes of other
// documents go on; a waiter whose context ends gets its error and leaves
// nothing behind; the map is empty once nobody holds or waits.
func TestDocLocks(t *testing.T) {
	var l docLocks
	ctx := context.Background()
	a, err := l.lock(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.lock(ctx, "b")
	if err != nil {
		t.Fatalf("another document waited: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := l.lock(short, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a second lock of a held document: %v, want the context's deadline", err)
	}
	if none, err := l.lock(short, ""); none != nil || err != nil {
		t.Fatalf("an empty id: %v, %v; want nothing locked", none, err)
	}
	l.unlock("a", a)
	l.unlock("b", b)
	l.unlock("", nil)

	var wg sync.WaitGroup
	n := 0 // guarded by the lock of "a": the race detector checks it
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dl, err := l.lock(ctx, "a")
			if err != nil {
				t.Error(err)
				return
			}
			n++
			l.unlock("a", dl)
		}()
	}
	wg.Wait()
	if n != 50 {
		t.Errorf("%d pushes held the lock, want 50", n)
	}
	if len(l.m) != 0 {
		t.Errorf("%d locks left in the map, want none", len(l.m))
	}
}
