package outbound

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzConfigJSON feeds an app_settings.outbound block (from a settings
// file or CHT's app settings) to Config's decoding and Validate: neither
// panics, and a block that validates encodes (JSON) to one that decodes
// back to the same configuration.
func FuzzConfigJSON(f *testing.F) {
	for _, s := range []string{`{}`, `null`, `[]`, `{"p":1}`,
		`{"p":{"relevant_to":"true","destination":{"base_url":"https://h","path":"/p"},"mapping":{"doc":"doc"}}}`,
		`{"p":{"relevant_to":"true","destination":{"base_url":"https://h","path":"/p","auth":{"type":"basic","username":"u","password_key":"k"}},` +
			`"mapping":{"a":{"path":"doc.a","optional":true},"b":{"expr":"doc.b + 1"},"c":{"expr":true},"d":{"expr":2.5},"e":{"expr":null,"path":"doc.e"}},"cron":"0 9 * * 1"}}`,
		`{"p":{"relevant_to":"true","destination":{"base_url":"https://u:p@h","path":"/p"},"mapping":{"doc":{"expr":[1]}}}}`,
		`{"p":{"relevant_to":"x","destination":{"base_url":"h"},"mapping":{"a":{"path":"doc.a","expr":"1"}},"cron":"@daily"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Config
		if json.Unmarshal(data, &c) != nil {
			return
		}
		if c.Validate() != nil {
			return
		}
		out, err := c.JSON()
		if err != nil {
			t.Fatalf("JSON of a valid config: %v", err)
		}
		var back Config
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("decode %s: %v", out, err)
		}
		if !reflect.DeepEqual(c, back) {
			t.Fatalf("round trip changes the config:\n%#v\n%#v", c, back)
		}
	})
}
