package fhir_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/fhir"
)

// Mapping files that do not decode are reported in the file's terms: the
// line, the path of keys and what is wrong, never a Go type.
func TestMappingDecodeErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name, file, want string
	}{
		{"YAML unknown key", "forms:\n  - form: X\n    fields:\n      - path: fields.w\n        cod: weight\n",
			`fhir: mapping: line 5: forms[0].fields[0]: unknown key "cod" (known keys: path, code, text, type,`},
		{"JSON unknown key", `{"forms":[{"form":"X","fields":[{"cod":"w"}]}]}`,
			`forms[0].fields[0]: unknown key "cod"`},
		{"YAML list expected", "forms:\n  - form: X\n    fields: 3\n", `line 3: forms[0].fields: want a list, got "3"`},
		{"JSON list expected", `{"forms":[{"form":"X","fields":3}]}`, `forms[0].fields: want a list, got "3"`},
		{"text expected", "forms:\n  - form: X\n    fields:\n      - path: a\n        unit: {a: 1}\n",
			"line 5: forms[0].fields[0].unit: want a text value, got keys and values"},
		{"number expected", "version: x\n", `line 1: version: want a whole number, got "x"`},
		{"YAML syntax", "forms: [\n", "not valid YAML: line 1"},
		{"JSON syntax", `{"forms": [}`, "not valid JSON: invalid character '}'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := fhir.ParseMapping([]byte(tt.file))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), "fhir.")
			assert.NotContains(t, err.Error(), "Go ")
			var me *fhir.MappingError
			assert.True(t, errors.As(err, &me), "a *MappingError")
		})
	}
}

// LoadMapping names the file; "" is the default mapping.
func TestLoadMappingFileAndDefault(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mapping.yaml")
	require.NoError(t, os.WriteFile(path, []byte("forms:\n  - form: X\n    fieldz: []\n"), 0o600))
	_, err := fhir.LoadMapping(path)
	require.ErrorContains(t, err, `line 3: forms[0]: unknown key "fieldz"`)
	require.ErrorContains(t, err, path)

	m, err := fhir.LoadMapping("")
	require.NoError(t, err)
	assert.Equal(t, fhir.DefaultMapping(), m)
}
