package fhir

import (
	"encoding/json"
	"os"
	"strconv"
	"testing"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

const testInstance = "https://cht.example.org"

// testConverter returns a converter with the example mapping; cfg fields
// that are set override the defaults.
func testConverter(tb testing.TB, cfg Config) *Converter {
	tb.Helper()
	if cfg.InstanceURL == "" {
		cfg.InstanceURL = testInstance
	}
	if cfg.Mapping == nil {
		m, err := LoadMapping("testdata/mapping.yaml")
		if err != nil {
			tb.Fatal(err)
		}
		cfg.Mapping = m
	}
	c, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func readFile(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func loadReport(tb testing.TB, name string) *cht.Report {
	tb.Helper()
	var r cht.Report
	if err := json.Unmarshal(readFile(tb, name), &r); err != nil {
		tb.Fatal(err)
	}
	return &r
}

func loadContact(tb testing.TB, name string) *cht.Contact {
	tb.Helper()
	var c cht.Contact
	if err := json.Unmarshal(readFile(tb, name), &c); err != nil {
		tb.Fatal(err)
	}
	return &c
}

// The single-resource conversions below are test shorthands for the
// resources ContactBundle and ReportBundle build.

func (c *Converter) contactResource(ct *cht.Contact, wantPerson bool) (*cht.Contact, error) {
	person, err := c.checkContact(ct)
	if err != nil {
		return nil, err
	}
	if person != wantPerson {
		return nil, &ConversionError{DocID: ct.ID, Field: "type", Value: ct.TypeID(), Reason: "wrong kind of contact"}
	}
	return c.cleanContact(nil, ct)
}

func (c *Converter) Patient(p *cht.Contact) (*models.Patient, error) {
	d, err := c.contactResource(p, true)
	if err != nil {
		return nil, err
	}
	return c.patient(nil, d), nil
}

func (c *Converter) Practitioner(p *cht.Contact) (*models.Practitioner, error) {
	d, err := c.contactResource(p, true)
	if err != nil {
		return nil, err
	}
	return c.practitioner(nil, d), nil
}

func (c *Converter) Location(p *cht.Contact) (*models.Location, error) {
	d, err := c.contactResource(p, false)
	if err != nil {
		return nil, err
	}
	return c.location(nil, d), nil
}

func (c *Converter) Organization(p *cht.Contact) (*models.Organization, error) {
	d, err := c.contactResource(p, false)
	if err != nil {
		return nil, err
	}
	return c.organization(nil, d), nil
}

// alone returns the conversion state of a planned report without its
// bundle members, so references are Type/id (or logical) as for a
// resource converted on its own.
func (c *Converter) alone(r *cht.Report) (*refs, error) {
	p, err := c.reportPlan(r)
	if err != nil {
		return nil, err
	}
	x := &refs{c: c, submitter: p.x.submitter, geo: p.x.geo}
	if p.x.subj != nil {
		s, err := c.subject(x, r)
		if err != nil {
			return nil, err
		}
		x.subj = &s
	}
	return x, nil
}

func (c *Converter) Encounter(r *cht.Report) (*models.Encounter, error) {
	x, err := c.alone(r)
	if err != nil {
		return nil, err
	}
	return c.encounter(x, r), nil
}

func (c *Converter) Observations(r *cht.Report) ([]models.Observation, error) {
	x, err := c.alone(r)
	if err != nil {
		return nil, err
	}
	return c.observations(x, r)
}

// appendReportBundle appends the JSON of [Converter.ReportBundle]'s
// transaction to dst through [Converter.reportTransaction]. It is
// byte-for-byte equal to ReportBundle followed by Transaction.MarshalJSON
// (errors included), which report_test.go checks. On error dst is returned
// unchanged.
func (c *Converter) appendReportBundle(dst []byte, r *cht.Report) ([]byte, error) {
	t, err := c.reportTransaction(r)
	if err != nil {
		return dst, err
	}
	defer t.release()
	return appendJSON(dst, t)
}

// uuidKey is uuid(rt, chtID, key) for key, or key+"#"+(dup+1) when dup > 0:
// the reference for the ids the direct writer derives (directwrite_test.go).
func (c *Converter) uuidKey(rt, chtID, key string, dup int) [16]byte {
	if dup == 0 {
		return uuidV5(c.ns, rt, chtID, key)
	}
	var buf [64]byte
	k := append(append(append(buf[:0], key...), '#'), strconv.Itoa(dup+1)...)
	return uuidV5(c.ns, rt, chtID, string(k))
}
