package chttest

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
)

// Synthetic describes a generated population for load and backfill tests:
// Households households under Parent, each with PeoplePerHousehold people,
// each person with ReportsPerPerson reports. Generation is deterministic
// for a given Seed.
type Synthetic struct {
	Households         int
	PeoplePerHousehold int
	ReportsPerPerson   int
	Seed               uint64
	// Parent is the place the households belong to; "" means
	// DemoCHWAreaID (seed the demo fixture first, or use NewDemoServer).
	Parent string
	// HouseholdType is the household contact type; "" means "household"
	// when the server knows that type, else "clinic".
	HouseholdType string
	// Submitter is the contact of the reports; "" means DemoCHWID.
	Submitter string
	// Forms are cycled through for the reports; nil means
	// {"assessment", "pregnancy_danger_sign"}.
	Forms []string
}

// SyntheticStats counts what SeedSynthetic stored.
type SyntheticStats struct {
	Households, People, Reports int
	// PersonIDs and ReportIDs are the generated ids, in creation order.
	PersonIDs, ReportIDs []string
}

// syntheticDefaults fills in cfg's parent, household type and submitter.
func (s *Server) syntheticDefaults(cfg *Synthetic) error {
	if cfg.Parent == "" {
		cfg.Parent = DemoCHWAreaID
	}
	if _, ok := s.store.getRaw(cfg.Parent); !ok {
		return fmt.Errorf("chttest: synthetic: parent %q not found", cfg.Parent)
	}
	if cfg.HouseholdType == "" {
		cfg.HouseholdType = "clinic"
		if _, ok := s.types["household"]; ok {
			cfg.HouseholdType = "household"
		}
	}
	if cfg.Submitter == "" {
		cfg.Submitter = DemoCHWID
	}
	return nil
}

// legacyType reports a contact type of CHT before 3.7, which documents
// carry as their type (the others are type "contact" with contact_type).
func legacyType(t string) bool {
	return t == "person" || t == "clinic" || t == "health_center" || t == "district_hospital"
}

// SeedSynthetic generates and stores a population (see Synthetic). Docs are
// stored one at a time, so memory holds only the stored JSON.
func (s *Server) SeedSynthetic(cfg Synthetic) (SyntheticStats, error) {
	var st SyntheticStats
	if cfg.Households < 0 || cfg.PeoplePerHousehold < 0 || cfg.ReportsPerPerson < 0 {
		return st, errors.New("chttest: synthetic: negative count")
	}
	if err := s.syntheticDefaults(&cfg); err != nil {
		return st, err
	}
	if len(cfg.Forms) == 0 {
		cfg.Forms = []string{"assessment", "pregnancy_danger_sign"}
	}
	rng := mrand.New(mrand.NewPCG(cfg.Seed, cfg.Seed^0x51a7e7))
	uuid := func() string {
		b := make([]byte, 16)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		b[6] = b[6]&0x0f | 0x40
		b[8] = b[8]&0x3f | 0x80
		h := hex.EncodeToString(b)
		return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	}
	put := func(d map[string]any) error {
		_, err := s.store.put(d, true)
		return err
	}
	typed := func(d map[string]any, typ string) {
		if legacyType(typ) {
			d["type"] = typ
			return
		}
		d["type"], d["contact_type"] = "contact", typ
	}
	submitter := s.minifyLineage(cfg.Submitter)
	given := []string{"Achieng", "Otieno", "Wanjiru", "Kamau", "Njeri", "Mwangi", "Akinyi", "Omondi", "Chebet", "Kiptoo"}
	family := []string{"Odhiambo", "Mutua", "Kariuki", "Wekesa", "Onyango", "Kimani", "Barasa", "Ndungu"}
	base := int64(1722004087809)
	for h := range cfg.Households {
		hid := uuid()
		fam := family[rng.IntN(len(family))]
		hh := map[string]any{"_id": hid, "name": fam + " Household " + strconv.Itoa(h+1),
			"parent": s.minifyLineage(cfg.Parent), "reported_date": base + int64(h)*1000}
		typed(hh, cfg.HouseholdType)
		if err := put(hh); err != nil {
			return st, err
		}
		st.Households++
		for p := range cfg.PeoplePerHousehold {
			pid := uuid()
			sex := []string{"female", "male"}[rng.IntN(2)]
			person := map[string]any{"_id": pid, "type": "person",
				"name":          given[rng.IntN(len(given))] + " " + fam,
				"sex":           sex,
				"date_of_birth": fmt.Sprintf("%04d-%02d-%02d", 1950+rng.IntN(74), 1+rng.IntN(12), 1+rng.IntN(28)),
				"phone":         fmt.Sprintf("+2547%08d", rng.IntN(100000000)),
				"patient_id":    strconv.Itoa(100000 + st.People),
				"role":          "patient",
				"parent":        s.minifyLineage(hid),
				"reported_date": base + int64(h)*1000 + int64(p) + 1,
			}
			if err := put(person); err != nil {
				return st, err
			}
			if p == 0 {
				hh["contact"] = s.minifyLineage(pid)
				if _, err := s.store.put(hh, false); err != nil {
					return st, err
				}
			}
			st.People++
			st.PersonIDs = append(st.PersonIDs, pid)
			for r := range cfg.ReportsPerPerson {
				rid := uuid()
				form := cfg.Forms[(st.Reports)%len(cfg.Forms)]
				rep := map[string]any{"_id": rid, "type": "data_record", "form": form, "content_type": "xml",
					"reported_date": base + 86400000 + int64(st.Reports)*60000,
					"from":          "+254712345679",
					"contact":       submitter,
					"fields": map[string]any{
						"patient_uuid": pid, "patient_name": person["name"],
						"inputs": map[string]any{"source": "contact", "contact": map[string]any{"_id": pid}},
						"group_fever": map[string]any{"fever": []string{"yes", "no"}[rng.IntN(2)],
							"temperature": fmt.Sprintf("%.1f", 36+rng.Float64()*4)},
						"visit": jsonInt(int64(r) + 1),
						"meta":  map[string]any{"instanceID": "uuid:" + uuid()},
					},
				}
				if err := put(rep); err != nil {
					return st, err
				}
				st.Reports++
				st.ReportIDs = append(st.ReportIDs, rid)
			}
		}
	}
	return st, nil
}

// GenerateSynthetic adds cfg's population to the end of the _changes feed
// without storing it: each document is generated from its id when it is
// read (_changes, the hydrate API, GET /medic/<id>), so a feed of millions
// of documents costs no memory. Documents have the fields SeedSynthetic
// gives them; their ids encode their place in the population. The
// documents are not listed by _all_docs or the contact and report
// endpoints, and people have no shortcode lookup; writing one stores it
// like any other document. It returns the number of documents added.
func (s *Server) GenerateSynthetic(cfg Synthetic) (int64, error) {
	if cfg.Households < 0 || cfg.PeoplePerHousehold < 0 || cfg.ReportsPerPerson < 0 {
		return 0, errors.New("chttest: synthetic: negative count")
	}
	if cfg.PeoplePerHousehold > 0xfff || cfg.ReportsPerPerson > 0xfff {
		return 0, errors.New("chttest: synthetic: at most 4095 people per household and reports per person")
	}
	if err := s.syntheticDefaults(&cfg); err != nil {
		return 0, err
	}
	if len(cfg.Forms) == 0 {
		cfg.Forms = []string{"assessment", "pregnancy_danger_sign"}
	}
	g := &lazySynthetic{cfg: cfg, per: 1 + cfg.PeoplePerHousehold*(1+cfg.ReportsPerPerson),
		parent: s.minifyLineage(cfg.Parent), submitter: s.minifyLineage(cfg.Submitter)}
	g.n = int64(cfg.Households) * int64(g.per)
	var err error
	if g.json, err = newLazyJSON(g); err != nil {
		return 0, fmt.Errorf("chttest: synthetic: %w", err)
	}
	st := s.store
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.lazy != nil {
		return 0, errors.New("chttest: synthetic: one generated population per server")
	}
	g.from = st.seq + 1
	st.seq += g.n
	st.lazy = g
	close(st.changed)
	st.changed = make(chan struct{})
	return g.n, nil
}

// lazySynthetic is a population generated when read (GenerateSynthetic).
type lazySynthetic struct {
	cfg               Synthetic
	per               int   // documents per household
	from, n           int64 // first sequence, number of documents
	parent, submitter any   // minified lineages
	json              *lazyJSON
}

// lazyPrefix starts the ids of generated documents:
// 5e000000-<kind>-4<person>-8<report>-<household>, all hex.
const lazyPrefix = "5e000000-"

const (
	lazyHousehold = 1
	lazyPerson    = 2
	lazyReport    = 3
)

// at returns the id of the k-th generated document.
func (g *lazySynthetic) at(k int64) string {
	h, off := k/int64(g.per), int(k%int64(g.per))
	if off == 0 {
		return lazyID(lazyHousehold, 0, 0, h)
	}
	j := off - 1
	p, q := j/(1+g.cfg.ReportsPerPerson), j%(1+g.cfg.ReportsPerPerson)
	if q == 0 {
		return lazyID(lazyPerson, p, 0, h)
	}
	return lazyID(lazyReport, p, q-1, h)
}

func lazyID(kind, p, r int, h int64) string {
	return fmt.Sprintf("%s%04x-4%03x-8%03x-%012x", lazyPrefix, kind, p, r, h)
}

// parse returns the place of a generated document's id in the population.
func (g *lazySynthetic) parse(id string) (kind, p, r int, h int64, ok bool) {
	if len(id) != 36 || id[:9] != lazyPrefix || id[13] != '-' || id[14] != '4' || id[18] != '-' || id[19] != '8' || id[23] != '-' {
		return 0, 0, 0, 0, false
	}
	num := func(s string) int64 {
		n, err := strconv.ParseUint(s, 16, 64)
		if err != nil {
			return -1
		}
		return int64(n)
	}
	k, pp, rr, hh := num(id[9:13]), num(id[15:18]), num(id[20:23]), num(id[24:])
	if k < lazyHousehold || k > lazyReport || pp < 0 || rr < 0 || hh < 0 || hh >= int64(g.cfg.Households) ||
		pp >= int64(g.cfg.PeoplePerHousehold) || rr >= int64(max(g.cfg.ReportsPerPerson, 1)) ||
		(k == lazyHousehold && (pp != 0 || rr != 0)) || (k == lazyPerson && rr != 0) ||
		(k == lazyReport && g.cfg.ReportsPerPerson == 0) {
		return 0, 0, 0, 0, false
	}
	return int(k), int(pp), int(rr), hh, true
}

var (
	lazyGiven  = []string{"Achieng", "Otieno", "Wanjiru", "Kamau", "Njeri", "Mwangi", "Akinyi", "Omondi", "Chebet", "Kiptoo"}
	lazyFamily = []string{"Odhiambo", "Mutua", "Kariuki", "Wekesa", "Onyango", "Kimani", "Barasa", "Ndungu"}
)

const lazyBase = int64(1722004087809)

// doc generates the document id, with its _rev, decoded.
func (g *lazySynthetic) doc(id string) (map[string]any, bool) {
	raw, ok := g.raw(id)
	if !ok {
		return nil, false
	}
	d, err := decodeDoc(raw)
	return d, err == nil
}

// jsonInt is n as the decoder of stored documents gives it.
func jsonInt(n int64) json.Number { return json.Number(strconv.FormatInt(n, 10)) }

// raw generates the JSON of the document id.
func (g *lazySynthetic) raw(id string) ([]byte, bool) {
	kind, p, r, h, ok := g.parse(id)
	if !ok {
		return nil, false
	}
	raw := g.appendDoc(nil, kind, p, r, h, lazyMembers{})
	if string(raw[8:8+len(id)]) != id {
		// A non-canonical spelling of the id (upper-case hex) names the
		// same document, under the id asked for.
		d, err := decodeDoc(raw)
		if err != nil {
			return nil, false
		}
		d["_id"] = id
		raw, err = json.Marshal(d)
		return raw, err == nil
	}
	return raw, true
}

// revOf returns the _rev of the generated document id.
func (g *lazySynthetic) revOf(id string) (string, bool) {
	kind, p, r, h, ok := g.parse(id)
	if !ok {
		return "", false
	}
	b := g.appendRev(nil, kind, p, r, h)
	return string(b[1 : len(b)-1]), true
}
