package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDemo runs the quick start and checks what it claims against what
// happened.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), nil, &out))
	text := out.String()

	lines := strings.Split(strings.TrimSpace(text), "\n")
	last := lines[len(lines)-1]
	m := regexp.MustCompile(`^demo: OK in \S+: (\d+) pushes, (\d+) FHIR resources, (\d+) transactions, (\d+) task records$`).FindStringSubmatch(last)
	require.NotNil(t, m, "summary line: %q", last)
	num := func(i int) int { n, _ := strconv.Atoi(m[i]); return n }
	assert.Equal(t, 3, num(1), "pushes")
	assert.Equal(t, 18, num(2), "FHIR resources: 2 patients, 2 practitioners, 2 organizations, 4 locations, 1 encounter, 7 observations")
	assert.Equal(t, 5, num(3), "one OpenHIM transaction per push and per EMR request")
	assert.Equal(t, 1, num(4), "the ServiceRequest sent twice raised one CHT record")

	assert.Contains(t, text, `"Amina Wanjiru"`, "the new patient reached the FHIR server")
	assert.Contains(t, text, "Body temperature = 38.9 °C")
	assert.Contains(t, text, "5/5 Successful")
	assert.Contains(t, text, "patient_uuid         "+newPatientID, "the task record names the patient")
	assert.Contains(t, text, `orchestration "FHIR transaction"`)
	assert.NotContains(t, text, "Failed")
}

func TestDemoRejectsUnknownFlags(t *testing.T) {
	err := run(context.Background(), []string{"--nope"}, new(bytes.Buffer))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nope")
}
