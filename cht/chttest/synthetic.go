package chttest

import (
	"encoding/hex"
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

// SeedSynthetic generates and stores a population (see Synthetic). Docs are
// stored one at a time, so memory holds only the stored JSON.
func (s *Server) SeedSynthetic(cfg Synthetic) (SyntheticStats, error) {
	var st SyntheticStats
	if cfg.Households < 0 || cfg.PeoplePerHousehold < 0 || cfg.ReportsPerPerson < 0 {
		return st, errors.New("chttest: synthetic: negative count")
	}
	if cfg.Parent == "" {
		cfg.Parent = DemoCHWAreaID
	}
	if _, ok := s.store.getRaw(cfg.Parent); !ok {
		return st, fmt.Errorf("chttest: synthetic: parent %q not found", cfg.Parent)
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
		if typ == "person" || typ == "clinic" || typ == "health_center" || typ == "district_hospital" {
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
						"visit": r + 1,
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
