package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
)

func TestAppendTokenEscape(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	for _, s := range []string{"", "abc", "a b+c/d#2", "https://cht.example.org/observation", "é<&>|%", `a\,|$b`, string(all)} {
		if got, want := string(appendTokenEscape([]byte("x"), s)), "x"+url.QueryEscape(tokenEscape(s)); got != want {
			t.Errorf("appendTokenEscape(%q) = %q, want %q", s, got, want)
		}
	}
}

// tokenEscape is the reference for appendTokenEscape's first step: the
// FHIR search characters \ , | $ escaped by a backslash
// (http://hl7.org/fhir/R4/search.html#escaping).
func tokenEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `,`, `\,`, `|`, `\|`, `$`, `\$`).Replace(s)
}

func TestUUIDText(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		var u [16]byte
		for i := range u {
			u[i] = byte(r.UintN(256))
		}
		want := fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
		if got := uuidText(u); string(got[:]) != want {
			t.Fatalf("uuidText = %s, want %s", got, want)
		}
	}
}

// TestIDHasher: the Observation ids of the direct writers are those of
// Converter.uuidKey, whether the shared prefix fills a SHA-1 block or not,
// for one document after another.
func TestIDHasher(t *testing.T) {
	c := testConverter(t, Config{})
	var ih idHasher
	for _, doc := range []string{"r", "442b0937-a32f-443e-8d28-7d9a7552fda2", strings.Repeat("long-id-", 20), "r2"} {
		ih.start(c.ns, "Observation", doc)
		for _, key := range []string{"a", "weight", strings.Repeat("k", 70)} {
			for dup := range 3 {
				if got, want := ih.uuid(key, dup), c.uuidKey("Observation", doc, key, dup); got != want {
					t.Errorf("%s %s %d: %x, want %x", doc, key, dup, got, want)
				}
			}
		}
	}
}

func TestDupTable(t *testing.T) {
	var d dupTable
	for _, n := range []int{3, 40} {
		d.reset(n)
		seen := map[string]int{}
		for i := range n {
			code := string(rune('a' + i%7))
			if got := d.next(code); got != seen[code] {
				t.Fatalf("n=%d: next(%q) = %d, want %d", n, code, got, seen[code])
			}
			seen[code]++
		}
	}
}

// TestPayloadBundleJSONBytes: PayloadBundleJSON (whose decoded strings
// alias its input) gives the bytes and errors of DecodeEncounterPayload
// followed by the typed path, for generated payloads in every strategy and
// with or without a configured Encounter type and class display, and
// leaves nothing pointing into the input.
func TestPayloadBundleJSONBytes(t *testing.T) {
	convs := []*Converter{
		testConverter(t, Config{Strategy: WritePut}),
		testConverter(t, Config{Strategy: WriteConditionalUpdate}),
		testConverter(t, Config{Strategy: WriteConditionalCreate, EncounterType: &Code{System: "s<>", Code: "c&", Display: "d"},
			EncounterClass: &Code{System: "cls", Code: "AMB"}}),
	}
	ok := 0
	for seed := range uint64(600) {
		c := convs[seed%3]
		p := genPayload(rand.New(rand.NewPCG(seed, 11)))
		data, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if seed%5 == 0 { // invalid JSON somewhere
			data = data[:int(seed)%len(data)]
		}
		got, gerr := c.PayloadBundleJSON([]byte("prefix"), data)
		var want []byte
		dp, werr := DecodeEncounterPayload(data)
		if werr == nil {
			var tx *Transaction
			if tx, werr = c.ConvertPayload(dp); werr == nil {
				want, werr = appendJSON([]byte("prefix"), tx)
			}
		}
		if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
			t.Fatalf("seed %d: errors differ: %v, want %v", seed, gerr, werr)
		}
		if gerr != nil {
			var ce *ConversionError
			if errors.As(gerr, &ce) {
				// The error must not alias the input: overwrite it.
				before := ce.Error()
				for i := range data {
					data[i] = 'X'
				}
				if ce.Error() != before {
					t.Fatalf("seed %d: the error changed with its input: %q, was %q", seed, ce.Error(), before)
				}
			}
			continue
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("seed %d: outputs differ:\n%s\n%s", seed, got, want)
		}
		ok++
	}
	if ok < 150 {
		t.Errorf("only %d of 600 payloads converted", ok)
	}
}
