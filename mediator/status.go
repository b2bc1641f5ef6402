package mediator

import "fmt"

// Status is an OpenHIM transaction status, the "status" field of an
// application/json+openhim response. Only the constants below are valid:
// core stores whatever string it receives, and its metrics count nothing else.
type Status string

// The transaction statuses core knows (src/model/transactions.js).
const (
	StatusProcessing          Status = "Processing"
	StatusPendingAsync        Status = "Pending Async" // core 8.3.0 and later
	StatusSuccessful          Status = "Successful"
	StatusCompleted           Status = "Completed"
	StatusCompletedWithErrors Status = "Completed with error(s)"
	StatusFailed              Status = "Failed"
)

// valid reports whether s is one of core's transaction statuses.
func (s Status) valid() bool {
	switch s {
	case StatusProcessing, StatusPendingAsync, StatusSuccessful, StatusCompleted,
		StatusCompletedWithErrors, StatusFailed:
		return true
	}
	return false
}

// validateStatus returns an error unless s is empty or valid.
func validateStatus(s Status) error {
	if s == "" || s.valid() {
		return nil
	}
	return fmt.Errorf("mediator: invalid status %q", string(s))
}

// computeStatus derives a transaction status the way core's setFinalStatus
// does when a mediator sends none, with the orchestrations standing in for
// core's secondary routes:
//
//   - a 5xx response is Failed;
//   - otherwise, any orchestration that answered 5xx or failed without a
//     response (transport error) makes it "Completed with error(s)";
//   - a 2xx response with every orchestration 2xx is Successful;
//   - anything else (4xx, or 2xx with a 3xx/4xx orchestration) is Completed.
//
// Orchestrations with neither a response nor an error are ignored.
func computeStatus(responseStatus int, orchestrations []Orchestration) Status {
	if responseStatus >= 500 {
		return StatusFailed
	}
	all2xx := true
	for i := range orchestrations {
		o := &orchestrations[i]
		if o.Response == nil {
			if o.Error != nil {
				return StatusCompletedWithErrors
			}
			continue // no HTTP exchange (e.g. added with AddOrchestration)
		}
		code := o.Response.Status
		if code >= 500 {
			return StatusCompletedWithErrors
		}
		if code < 200 || code > 299 {
			all2xx = false
		}
	}
	if responseStatus >= 200 && responseStatus <= 299 && all2xx {
		return StatusSuccessful
	}
	return StatusCompleted
}
