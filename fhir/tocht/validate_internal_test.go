package tocht

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCheckInput checks checkInput against encoding/json, which turns
// invalid UTF-8 and lone surrogates into U+FFFD and accepts control
// characters: whatever checkInput accepts decodes to strings (keys
// included) without a U+FFDD the input did not hold and without control
// characters but tab, CR and LF.
func FuzzCheckInput(f *testing.F) {
	for _, s := range []string{
		`{"resourceType":"Patient","id":"a.b","name":[{"text":"Zoë \u00e9\ud83d\ude00"}]}`,
		`{"resourceType":"Patient","id":"_design"}`,
		`{"resourceType":"Patient","name":[{"text":"a\u0000b"}]}`,
		"{\"resourceType\":\"Patient\",\"name\":[{\"text\":\"a\xffb\"}]}",
		`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","id":"../x"}}]}`,
		`{"a":"\ud800\u0041","b":[1,true,null,{"c":"\t\r\n\/\\\""}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := checkInput(data)
		if err != nil || !json.Valid(data) {
			return
		}
		if !utf8.Valid(data) {
			t.Fatalf("accepted invalid UTF-8: %q", data)
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber() // json.Valid accepts numbers beyond float64
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("json.Valid but Unmarshal: %v", err)
		}
		hadFFFD := bytes.Contains(data, []byte("\uFFFD")) || strings.Contains(strings.ToLower(string(data)), `\ufffd`)
		var walk func(any)
		check := func(s string) {
			if !hadFFFD && strings.ContainsRune(s, utf8.RuneError) {
				t.Fatalf("accepted %q, which decodes to U+FFFD", data)
			}
			for _, r := range s {
				if r < 0x20 && r != '\t' && r != '\r' && r != '\n' {
					t.Fatalf("accepted %q, which decodes to control character %U", data, r)
				}
			}
		}
		walk = func(v any) {
			switch v := v.(type) {
			case string:
				check(v)
			case []any:
				for _, e := range v {
					walk(e)
				}
			case map[string]any:
				for k, e := range v {
					check(k)
					walk(e)
				}
			}
		}
		walk(v)
	})
}

// The issues name the element, and their number is bounded whatever the
// size of the body.
func TestCheckInputNamesElementsAndBoundsIssues(t *testing.T) {
	body := `{"resourceType":"Bundle","entry":[` + strings.Repeat(`{"resource":{"resourceType":"Patient","id":"_x","name":[{"text":"\u0001"}]}},`, 100) + `{}]}`
	err := checkInput([]byte(body))
	e, ok := err.(*Error)
	if !ok || e.Status != 400 {
		t.Fatalf("err = %v, want a 400 *Error", err)
	}
	msg := err.Error()
	for _, want := range []string{"Bundle.entry[0].resource.name[0].text", "Bundle.entry[0].resource.id", "Bundle.entry[4].resource.name[0].text"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%s not named in %s", want, msg)
		}
	}
	if n := strings.Count(msg, "Bundle.entry["); n != maxInputIssues {
		t.Errorf("%d issues, want %d", n, maxInputIssues)
	}
}
