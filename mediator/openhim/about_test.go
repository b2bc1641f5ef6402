package openhim_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
)

// TestCoreRelease: GET /about answers the release in currentCoreVersion
// (src/api/about.js, getAboutInformation, 4.0.5 to 8.5.0, for any
// authenticated user); a wrong password fails it.
func TestCoreRelease(t *testing.T) {
	for _, tt := range []struct {
		version openhimtest.Version
		release string
		want    string
	}{
		{openhimtest.Version4, "", "4.0.5"},
		{openhimtest.Version7, "", "7.1.0"},
		{openhimtest.Version8, "", "8.5.0"},
		{openhimtest.Version8, "8.2.0", "8.2.0"},
	} {
		t.Run(fmt.Sprintf("v%d %s", tt.version, tt.release), func(t *testing.T) {
			core := openhimtest.NewServer(openhimtest.Config{Version: tt.version, Release: tt.release})
			t.Cleanup(core.Close)
			cfg := openhim.Config{URL: core.URL, Username: openhimtest.RootUser, Password: openhimtest.RootPassword,
				CoreVersion: int(tt.version), MaxRetries: -1}
			c, err := openhim.NewClient(cfg, nil)
			require.NoError(t, err)
			got, err := c.CoreRelease(context.Background())
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)

			cfg.Password = "wrong"
			c, err = openhim.NewClient(cfg, nil)
			require.NoError(t, err)
			_, err = c.CoreRelease(context.Background())
			assert.ErrorIs(t, err, openhim.ErrUnauthorized)
		})
	}
}
