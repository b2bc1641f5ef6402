package push

import "time"

// SetPendingIntervals sets how soon p reads the contact types again after
// a failed read (retry) and after a read (refresh).
func SetPendingIntervals(p *Pending, retry, refresh time.Duration) {
	p.retry, p.refresh = retry, refresh
}

// PendingHandler is the Handler p serves with now; nil before the contact
// types are read.
func PendingHandler(p *Pending) *Handler { return p.handler.Load() }
