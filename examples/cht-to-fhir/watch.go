package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/outboundwatch"
	"github.com/cht-interop/openhim-mediator-go/mediator"
)

// watchOutbound exports CHT's outbound queue (the pushes to this mediator that keep failing) at
// /metrics and as the /readyz check (docs/referral-loop.md has the alert rule).
func watchOutbound(s Settings, c *cht.Client, cfg *mediator.Config) {
	if s.OutboundWatch <= 0 || c == nil {
		return
	}
	w := outboundwatch.New(c, outboundwatch.Config{MaxAge: s.OutboundWatch})
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), w)
	cfg.Registry = reg
	cfg.ReadyCheck = w.Ready
}
