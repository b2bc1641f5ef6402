// Package versionhook lets the subpackages of cht learn the CHT release a
// cht.Client talks to without widening cht's public API: package cht sets
// Of when it is initialised, which is before any package importing cht
// runs.
package versionhook

import (
	"context"

	"github.com/cht-interop/openhim-mediator-go/cht/internal/release"
)

// Of returns the CHT release client talks to when client is a *cht.Client:
// its Config.Version, else the version it detects with GET
// /api/deploy-info, now (one detection at a time: a caller waits for one
// started after it asked). When that fails after an earlier detection
// succeeded, the version detected last is returned without error; err is
// set only while none has succeeded. ok is false, with no error, for any
// other value: the release is unknown.
var Of func(ctx context.Context, client any) (v release.Version, ok bool, err error)
