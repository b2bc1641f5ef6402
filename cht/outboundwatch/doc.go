// Package outboundwatch exports CHT's outbound push queue as Prometheus metrics and as a
// readiness check, so that an operator is alerted when CHT's pushes to a mediator keep failing.
//
// CHT pushes a document to each configured outbound destination once when it changes; when that
// push fails, Sentinel queues it in a task:outbound document and retries it every 5 minutes,
// forever and silently (see [cht.OutboundTask]). A [Watch] reads that queue with
// [cht.Client.OutboundQueue] (a CHT administrator's credentials are needed) when Prometheus
// scrapes it or a readiness probe asks, reusing one read for Config.CacheFor:
//
//	cht_outbound_queue_up                           1 when the last read of the queue succeeded
//	cht_outbound_queue_tasks                        documents with pushes waiting
//	cht_outbound_queue_pushes{destination="<push>"} pushes waiting per destination (each failed at least once)
//	cht_outbound_queue_oldest_failure_age_seconds   age of the oldest waiting push, 0 when none
//
// Register it with the mediator's registry and add [Watch.Ready] as a readiness check:
//
//	w := outboundwatch.New(chtClient, outboundwatch.Config{})
//	reg.MustRegister(w)
//
// An alert rule that fires when pushes have kept failing for half an hour (six retries):
//
//	groups:
//	  - name: cht-outbound
//	    rules:
//	      - alert: CHTOutboundPushesFailing
//	        expr: cht_outbound_queue_oldest_failure_age_seconds > 1800
//	        labels: {severity: warning}
//	        annotations:
//	          summary: "CHT outbound pushes have been failing for {{ $value | humanizeDuration }}"
package outboundwatch
