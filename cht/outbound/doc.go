// Package outbound is the mediator's side of CHT's outbound push feature
// (app_settings.outbound): the configuration CHT needs, the HTTP handler
// that receives the pushes, and a watch over the pushes CHT keeps retrying.
//
// # Configuration
//
// [Config] is the app_settings.outbound block as a Go value: push name →
// [Push]. [Config.AppSettings] validates it against CHT's rules and returns
// the fragment to merge into a CHT configuration. [DocMapping] sends the
// whole hydrated document; [RefMapping] sends only its id and revision, to
// be fetched by the receiver with [HydrateFetcher].
//
// # Receiving pushes
//
// A [Handler] answers CHT's POSTs by CHT's rules: 200 only after
// HandlerConfig.Handle has durably done its work, a failure status
// otherwise, so that CHT retries. Handle gets a [Payload] whose document is
// decoded once, whichever of [Payload.Contact] and [Payload.Report] asks.
//
// # Watching the retry queue
//
// CHT pushes a document to each configured destination once when it
// changes; when that push fails, Sentinel queues it in a task:outbound
// document and retries it every 5 minutes, forever and silently (see
// [cht.OutboundTask]). A [Watch] reads that queue with
// [cht.Client.OutboundQueue] (a CHT administrator's credentials are needed)
// when Prometheus scrapes it, reusing one read for WatchConfig.CacheFor:
//
//	cht_outbound_queue_up                                        1 when the last read of the queue succeeded
//	cht_outbound_queue_tasks                                     documents with pushes waiting after failing
//	cht_outbound_queue_pushes{destination="<push>"}              pushes waiting per destination
//	cht_outbound_queue_unconfigured_pushes{destination="<push>"} queued pushes no longer configured
//	cht_outbound_queue_oldest_failure_age_seconds                age of the oldest waiting push, 0 when none
//	cht_outbound_queue_configured_known                          1 when the configured pushes are known
//
// A push with a cron (CHT 4.5+) is queued outside its window without being
// tried, so it waits in the same queue without having failed: such pushes
// are counted by destination but not as failures. With a [cht.Client] the
// Watch learns them from the same read of the app settings as the
// configured pushes (below): the pushes whose "cron" is a string CHT
// accepts, on a CHT of 4.5 or later (the client's Config.Version, or the
// version it detects again at each read of the app settings, so that an
// upgrade of CHT counts within 5 minutes), and that falls due. A push whose
// cron CHT refuses, or does not read, counts as failing: it is then never
// sent, or sent at once. So does a push whose cron CHT accepts but whose
// days exist in none of its months, such as "0 0 31 2 *" (31 February) or
// "0 0 31 4,6,9,11 *": CHT never sends it, and a WARN line names the push
// and its cron. So does every
// push with a cron while the version is unknown (a Queue other than a
// [cht.Client]) or cannot be detected (a WARN line says so). A list in
// WatchConfig.Scheduled is used instead.
//
// A push removed from app_settings.outbound (or renamed) leaves its queued
// entries behind: Sentinel never tries them again and, from CHT 4.11,
// does not clear them; they stay until their task:outbound document is
// edited or deleted, or the push is configured again (Sentinel then sends
// them). Such entries count in cht_outbound_queue_unconfigured_pushes
// instead of as failures. With a [cht.Client] the Watch learns the
// configured pushes itself: the keys of app_settings.outbound, read with
// [cht.Client.AppSettings] every 5 minutes alongside the queue. A failed
// read never fails a scrape: the names last read stay in use, and before
// any read succeeds every queued push counts as configured
// (cht_outbound_queue_configured_known is 0). A list in
// WatchConfig.Configured is used instead; the settings are then read only
// to learn the scheduled pushes, unless WatchConfig.Scheduled is given too.
//
// Register it with the mediator's registry. It is not a readiness check: a
// mediator taken out of service while pushes to it fail would never receive
// the retries that empty the queue.
//
//	w := outbound.NewWatch(chtClient, outbound.WatchConfig{})
//	reg.MustRegister(w)
//
// An alert rule that fires when pushes have kept failing for half an hour
// (six retries):
//
//	groups:
//	  - name: cht-outbound
//	    rules:
//	      - alert: CHTOutboundPushesFailing
//	        expr: cht_outbound_queue_oldest_failure_age_seconds > 1800
//	        labels: {severity: warning}
//	        annotations:
//	          summary: "CHT outbound pushes have been failing for {{ $value | humanizeDuration }}"
package outbound
