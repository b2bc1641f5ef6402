package backfill

// SetOnWait makes Run call f when a batch waits for an older batch that
// carries one of its resources with other content.
func SetOnWait(cfg *Config, f func(batch, older int64)) { cfg.onWait = f }
