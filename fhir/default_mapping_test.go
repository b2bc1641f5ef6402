package fhir

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDefaultMappingParses(t *testing.T) {
	m := DefaultMapping()
	var forms []string
	for _, f := range m.Forms {
		forms = append(forms, f.Form)
	}
	assert.Equal(t, []string{"HEIGHT_WEIGHT", "assessment", "pregnancy_danger_sign", "interop_follow_up"}, forms)
	// Each call is a new value: changing one does not change the next.
	m.Forms = nil
	require.NotEmpty(t, DefaultMapping().Forms)
}
