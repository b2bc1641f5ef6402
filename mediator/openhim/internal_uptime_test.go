package openhim

import "testing"

func TestProcessUptime(t *testing.T) {
	a := processUptime()
	b := processUptime()
	if a <= 0 || b < a {
		t.Fatalf("processUptime = %v then %v", a, b)
	}
}
