package openhim

import "encoding/json"

// CompareStoredForTest compares d with a stored mediator document as
// GET /mediators/:urn returns it.
func CompareStoredForTest(d *Definition, storedJSON string) (*DefinitionDrift, error) {
	m := &RegisteredMediator{}
	if err := json.Unmarshal([]byte(storedJSON), m); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(storedJSON), &m.raw); err != nil {
		return nil, err
	}
	return compareStored(d, m), nil
}
