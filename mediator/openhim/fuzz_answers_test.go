package openhim

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzCoreMessage feeds core's error bodies (text or JSON) to
// coreMessage: it never panics, keeps at most 512 bytes and an ellipsis,
// and a UTF-8 body gives a UTF-8 message.
func FuzzCoreMessage(f *testing.F) {
	for _, s := range []string{``, `Not Found`, `{"error":"Mediator not found"}`, `{"message":""}`, `{"result":1}`,
		`{"error":"` + string(make([]byte, 600)) + `"}`, "\xe2\x82", `"x"`, `[1]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m := coreMessage(body)
		if len(m) > 512+len("…") {
			t.Fatalf("message of %d bytes", len(m))
		}
		if utf8.Valid(body) && !utf8.ValidString(m) {
			t.Fatalf("UTF-8 body gives a message that is not UTF-8: %q", m)
		}
	})
}

// FuzzStoredMediator feeds core's answer to GET /mediators/:urn, decoded
// as GetMediator does, to compareStored: it never panics, and the
// definition stored as registered shows no drift.
func FuzzStoredMediator(f *testing.F) {
	def := testDefinition("urn:mediator:fuzz")
	def.DefaultChannelConfig = []Channel{{Name: "C", URLPattern: "^/c$", Type: "http", Allow: []string{"a"},
		Routes: []Route{{Name: "R", Host: "h", Port: 1, Primary: true, Type: "http", Username: "u", Password: "p"}}}}
	same, err := json.Marshal(def)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{string(same), `{}`, `null`, `[]`, `{"version":"x.y"}`, `{"version":"1.0.0","endpoints":{}}`,
		`{"version":"1.0.0","endpoints":[1]}`, `{"defaultChannelConfig":[{"routes":[{"username":""}]}]}`,
		`{"version":"99999999999999999999.0.0"}`, `{"_configModifiedTS":"x"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m := &RegisteredMediator{}
		if json.Unmarshal(raw, m) != nil || json.Unmarshal(raw, &m.raw) != nil {
			return
		}
		drift := compareStored(&def, m)
		if string(raw) == string(same) && drift != nil {
			t.Fatalf("the registered definition drifts: %+v", drift)
		}
	})
}
