package openhim

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func lcLoadDefinition(t *testing.T, name string) Definition {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "lifecycle", name))
	if err != nil {
		t.Fatal(err)
	}
	var d Definition
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return d
}

// fields returns the Field of every *ValidationError joined in err.
func lcFields(err error) []string {
	var out []string
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		var ve *ValidationError
		if errors.As(e, &ve) {
			out = append(out, ve.Field)
		}
	}
	walk(err)
	slices.Sort(out)
	return out
}

func TestDefinitionValidate(t *testing.T) {
	v7 := lcLoadDefinition(t, "mediator-v7.json")
	kafka := lcLoadDefinition(t, "mediator-v8-kafka.json")
	tests := []struct {
		name   string
		def    Definition
		core   int
		mutate func(d *Definition)
		want   []string // fields with errors; nil = valid
	}{
		{name: "v7 fixture on core 7", def: v7, core: 7},
		{name: "v7 fixture on core 8", def: v7, core: 8},
		{name: "v7 fixture on core 4", def: v7, core: 4},
		{name: "v7 fixture on default core", def: v7, core: 0},
		{name: "kafka fixture on core 8", def: kafka, core: 8},
		{name: "kafka fixture on core 7", def: kafka, core: 7, want: []string{
			"defaultChannelConfig[0].routes[1].host", "defaultChannelConfig[0].routes[1].port",
			"defaultChannelConfig[0].routes[1].type", "defaultChannelConfig[0].routes[1].waitPrimaryResponse",
			"endpoints[0].host", "endpoints[0].port", "endpoints[0].type"}},
		{name: "missing urn, name, version", def: v7, mutate: func(d *Definition) { d.URN, d.Name, d.Version = " ", "", "" },
			want: []string{"name", "urn", "version"}},
		{name: "bad semver", def: v7, mutate: func(d *Definition) { d.Version = "1.2" }, want: []string{"version"}},
		{name: "semver leading zero", def: v7, mutate: func(d *Definition) { d.Version = "01.2.3" }, want: []string{"version"}},
		{name: "semver with v accepted like node-semver", def: v7, mutate: func(d *Definition) { d.Version = "v1.2.3" }},
		{name: "no endpoints", def: v7, mutate: func(d *Definition) { d.Endpoints = nil }, want: []string{"endpoints"}},
		{name: "mllp route on core 8", def: v7, core: 8, mutate: func(d *Definition) { d.Endpoints[0].Type = "mllp" },
			want: []string{"endpoints[0].type"}},
		{name: "mllp route on core 7", def: v7, core: 7, mutate: func(d *Definition) { d.Endpoints[0].Type = "mllp" }},
		{name: "route without host on core 8", def: v7, core: 8, mutate: func(d *Definition) { d.Endpoints[0].Host, d.Endpoints[0].Port = "", 0 }},
		{name: "route without host on core 7", def: v7, core: 7, mutate: func(d *Definition) { d.Endpoints[0].Host, d.Endpoints[0].Port = "", 0 },
			want: []string{"endpoints[0].host", "endpoints[0].port"}},
		{name: "route port out of range", def: v7, mutate: func(d *Definition) { d.Endpoints[0].Port = 70000 }, want: []string{"endpoints[0].port"}},
		{name: "route without name", def: v7, mutate: func(d *Definition) { d.Endpoints[0].Name = "" }, want: []string{"endpoints[0].name"}},
		{name: "kafka route without topic", def: kafka, mutate: func(d *Definition) { d.Endpoints[0].KafkaTopic = "" }, want: []string{"endpoints[0].kafkaTopic"}},
		{name: "bad statusCodesCheck", def: kafka, mutate: func(d *Definition) { d.DefaultChannelConfig[0].Routes[1].StatusCodesCheck = "ok" },
			want: []string{"defaultChannelConfig[0].routes[1].statusCodesCheck"}},
		{name: "channel without name and urlPattern", def: v7, mutate: func(d *Definition) {
			d.DefaultChannelConfig[0].Name, d.DefaultChannelConfig[0].URLPattern = "", ""
		}, want: []string{"defaultChannelConfig[0].name", "defaultChannelConfig[0].urlPattern"}},
		{name: "channel enums", def: v7, mutate: func(d *Definition) {
			c := &d.DefaultChannelConfig[0]
			c.Type, c.AuthType, c.Status, c.Methods = "ftp", "secret", "gone", []string{"GET", "FETCH"}
		}, want: []string{"defaultChannelConfig[0].authType", "defaultChannelConfig[0].methods", "defaultChannelConfig[0].methods[1]",
			"defaultChannelConfig[0].status", "defaultChannelConfig[0].type"}},
		{name: "polling channel needs schedule", def: v7, mutate: func(d *Definition) {
			d.DefaultChannelConfig[0].Type, d.DefaultChannelConfig[0].Methods = "polling", nil
		},
			want: []string{"defaultChannelConfig[0].pollingSchedule"}},
		{name: "polling channel with schedule", def: v7, mutate: func(d *Definition) {
			c := &d.DefaultChannelConfig[0]
			c.Type, c.PollingSchedule, c.Methods = "polling", "1 minute", nil
		}},
		{name: "channel ranges", def: v7, mutate: func(d *Definition) {
			c := &d.DefaultChannelConfig[0]
			c.Timeout, c.MaxBodyAgeDays, c.Priority, c.AutoRetryMaxAttempts = 3600001, 36501, -1, -1
		}, want: []string{"defaultChannelConfig[0].autoRetryMaxAttempts", "defaultChannelConfig[0].maxBodyAgeDays",
			"defaultChannelConfig[0].priority", "defaultChannelConfig[0].timeout"}},
		// core's isMaxBodyDaysValid (src/api/channels.js, v4.0.5 to v8.5.0;
		// addChannel checks the body, updateChannel the stored channel):
		// 0 < maxBodyAgeDays < 36500, with requestBody or responseBody true.
		{name: "maxBodyAgeDays without requestBody or responseBody", def: v7, mutate: func(d *Definition) {
			d.DefaultChannelConfig[0].MaxBodyAgeDays = 30
		}, want: []string{"defaultChannelConfig[0].maxBodyAgeDays"}},
		{name: "maxBodyAgeDays with requestBody false", def: v7, mutate: func(d *Definition) {
			d.DefaultChannelConfig[0].MaxBodyAgeDays, d.DefaultChannelConfig[0].RequestBody = 30, new(bool)
		}, want: []string{"defaultChannelConfig[0].maxBodyAgeDays"}},
		{name: "maxBodyAgeDays 36500", def: v7, mutate: func(d *Definition) {
			yes := true
			d.DefaultChannelConfig[0].MaxBodyAgeDays, d.DefaultChannelConfig[0].RequestBody = 36500, &yes
		}, want: []string{"defaultChannelConfig[0].maxBodyAgeDays"}},
		{name: "maxBodyAgeDays 36499 with responseBody", def: v7, mutate: func(d *Definition) {
			yes := true
			d.DefaultChannelConfig[0].MaxBodyAgeDays, d.DefaultChannelConfig[0].ResponseBody = 36499, &yes
		}},
		// core's validateMethod and isPathValid (src/api/channels.js, v4.0.5
		// to v8.5.0), which updateChannel runs on every PUT of a channel.
		{name: "repeated method", def: v7, mutate: func(d *Definition) {
			d.DefaultChannelConfig[0].Methods = []string{"POST", "GET", "POST"}
		}, want: []string{"defaultChannelConfig[0].methods[2]"}},
		{name: "methods on a tcp channel", def: v7, mutate: func(d *Definition) {
			d.DefaultChannelConfig[0].Type, d.DefaultChannelConfig[0].Methods = "tcp", []string{"POST"}
		}, want: []string{"defaultChannelConfig[0].methods"}},
		{name: "route with path and pathTransform", def: v7, mutate: func(d *Definition) {
			d.DefaultChannelConfig[0].Routes[0].Path, d.DefaultChannelConfig[0].Routes[0].PathTransform = "/a", "s/b/c"
		}, want: []string{"defaultChannelConfig[0].routes[0].pathTransform"}},
		{name: "route with a bad pathTransform", def: v7, mutate: func(d *Definition) {
			d.DefaultChannelConfig[0].Routes[0].PathTransform = "/b/c"
		}, want: []string{"defaultChannelConfig[0].routes[0].pathTransform"}},
		{name: "route with a pathTransform", def: v7, mutate: func(d *Definition) {
			d.DefaultChannelConfig[0].Routes[0].PathTransform = "s/fhir/R4/g"
		}},
		{name: "two primary routes", def: v7, mutate: func(d *Definition) {
			c := &d.DefaultChannelConfig[0]
			c.Routes = append(c.Routes, Route{Name: "second", Host: "h", Port: 1, Primary: true})
		}, want: []string{"defaultChannelConfig[0].routes"}},
		{name: "two primary routes, one disabled", def: v7, mutate: func(d *Definition) {
			c := &d.DefaultChannelConfig[0]
			c.Routes = append(c.Routes, Route{Name: "second", Host: "h", Port: 1, Primary: true, Status: "disabled"})
		}},
		// Core counts enabled primary routes (src/middleware/router.js
		// numberOfPrimaryRoutes skips status "disabled"); with none the
		// router answers 404 and addChannel/updateChannel
		// (src/api/channels.js) refuse the channel with 400 "Channel must
		// have a primary route".
		{name: "no primary route", def: v7, mutate: func(d *Definition) { d.DefaultChannelConfig[0].Routes[0].Primary = false },
			want: []string{"defaultChannelConfig[0].routes"}},
		{name: "only primary route disabled", def: v7, mutate: func(d *Definition) {
			c := &d.DefaultChannelConfig[0]
			c.Routes[0].Status = "disabled"
			c.Routes = append(c.Routes, Route{Name: "second", Host: "h", Port: 1})
		}, want: []string{"defaultChannelConfig[0].routes"}},
		{name: "primary route enabled, another disabled", def: v7, mutate: func(d *Definition) {
			c := &d.DefaultChannelConfig[0]
			c.Routes = append(c.Routes, Route{Name: "second", Host: "h", Port: 1, Status: "disabled"})
		}},
		{name: "duplicate channel names", def: v7, mutate: func(d *Definition) {
			d.DefaultChannelConfig = append(d.DefaultChannelConfig, d.DefaultChannelConfig[0])
		}, want: []string{"defaultChannelConfig[1].name"}},
		{name: "unknown configDef type", def: v7, mutate: func(d *Definition) { d.ConfigDefs[0].Type = "array" },
			want: []string{"configDefs[0].type"}},
		{name: "option without values", def: v7, mutate: func(d *Definition) { d.ConfigDefs[3].Values = nil },
			want: []string{"configDefs[3].values", "config.mode"}},
		{name: "struct without template", def: v7, mutate: func(d *Definition) { d.ConfigDefs[5].Template = nil; delete(d.Config, "targets") },
			want: []string{"configDefs[5].template"}},
		{name: "nested struct", def: v7, mutate: func(d *Definition) {
			d.ConfigDefs[5].Template[0].Type = ConfigStruct
		}, want: []string{"configDefs[5].template[0].type"}},
		{name: "template item without param and type", def: v7, mutate: func(d *Definition) {
			d.ConfigDefs[5].Template = append(d.ConfigDefs[5].Template, ConfigDef{})
		}, want: []string{"configDefs[5].template[2].param", "configDefs[5].template[2].type"}},
		{name: "duplicate param", def: v7, mutate: func(d *Definition) { d.ConfigDefs[1].Param = "upstreamUrl"; delete(d.Config, "apiKey") },
			want: []string{"configDefs[1].param"}},
		{name: "config value without def", def: v7, mutate: func(d *Definition) { d.Config["extra"] = "x" }, want: []string{"config.extra"}},
		{name: "config value types", def: v7, mutate: func(d *Definition) {
			d.Config["upstreamUrl"] = 1.0
			d.Config["apiKey"] = false
			d.Config["retries"] = "3"
			d.Config["mode"] = "slow"
			d.Config["headers"] = map[string]any{"X-A": 1.0}
			d.Config["targets"] = map[string]any{"url": "x"}
			d.Config["enabled"] = "yes"
		}, want: []string{"config.apiKey", "config.enabled", "config.headers.X-A", "config.mode", "config.retries", "config.targets", "config.upstreamUrl"}},
		// Core checks the JSON it is sent (src/api/mediators.js,
		// validateConfig): Go types that encode to the same JSON pass.
		{name: "config values of Go types", def: v7, mutate: func(d *Definition) {
			d.Config["retries"] = 3
			d.Config["headers"] = map[string]string{"X-A": "1"}
			d.Config["targets"] = []map[string]any{{"url": "http://a", "weight": 1}}
		}},
		{name: "config values of Go types, wrong", def: v7, mutate: func(d *Definition) {
			d.Config["headers"] = map[string]int{"X-A": 1}
			d.Config["targets"] = []string{"http://a"}
		}, want: []string{"config.headers.X-A", "config.targets[0]"}},
		{name: "config value that is not JSON", def: v7, mutate: func(d *Definition) { d.Config["retries"] = func() {} },
			want: []string{"config"}},
		{name: "struct array element with unknown key", def: v7, mutate: func(d *Definition) {
			d.Config["targets"] = []any{map[string]any{"url": "x"}, map[string]any{"nope": 1.0}}
		}, want: []string{"config.targets[1].nope"}},
		// Core 7.0.1+ (src/middleware/requestMatching.js, matchMethod:
		// channel.methods.find(...)) never matches a channel without
		// methods; 4.x and 7.0 route any method to it.
		{name: "channel without methods on core 8", def: v7, core: 8, mutate: func(d *Definition) { d.DefaultChannelConfig[0].Methods = nil },
			want: []string{"defaultChannelConfig[0].methods"}},
		{name: "channel without methods on core 7", def: v7, core: 7, mutate: func(d *Definition) { d.DefaultChannelConfig[0].Methods = nil },
			want: []string{"defaultChannelConfig[0].methods"}},
		{name: "channel without methods on default core", def: v7, mutate: func(d *Definition) { d.DefaultChannelConfig[0].Methods = nil },
			want: []string{"defaultChannelConfig[0].methods"}},
		{name: "channel without methods on core 4", def: v7, core: 4, mutate: func(d *Definition) { d.DefaultChannelConfig[0].Methods = nil }},
		{name: "tcp channel needs no methods", def: v7, core: 7, mutate: func(d *Definition) {
			d.DefaultChannelConfig[0].Methods, d.DefaultChannelConfig[0].Type = nil, "tcp"
		}},
		// Core casts route.cert to an ObjectId (src/model/channels.js,
		// RouteDef cert: Schema.Types.ObjectId): 400 "Cast to ObjectId failed".
		{name: "route cert not an ObjectId", def: v7, mutate: func(d *Definition) { d.DefaultChannelConfig[0].Routes[0].Cert = "my-ca.pem" },
			want: []string{"defaultChannelConfig[0].routes[0].cert"}},
		{name: "route cert an ObjectId", def: v7, mutate: func(d *Definition) { d.DefaultChannelConfig[0].Routes[0].Cert = "5f1b2c3d4e5f60718293a4b5" }},
		{name: "struct template types not checked (as core)", def: v7, mutate: func(d *Definition) {
			d.Config["targets"] = []any{map[string]any{"url": 5.0, "weight": "heavy"}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := lcCloneDef(t, tt.def)
			if tt.mutate != nil {
				tt.mutate(&d)
			}
			err := d.Validate(tt.core)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if got := lcFields(err); !slices.Equal(got, want) {
				t.Fatalf("error fields = %v, want %v\nerr: %v", got, want, err)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false for %v", err)
			}
		})
	}
}

func lcCloneDef(t *testing.T, d Definition) Definition {
	t.Helper()
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var out Definition
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestValidateConfigNeverLeaksValues(t *testing.T) {
	defs := []ConfigDef{{Param: "apiKey", Type: ConfigPassword}, {Param: "mode", Type: ConfigOption, Values: []string{"a"}},
		{Param: "n", Type: ConfigNumber}}
	secret := "hunter2-very-secret"
	err := validateConfig(defs, map[string]any{"apiKey": []any{secret}, "mode": secret, "n": secret, "other": secret})
	if err == nil {
		t.Fatal("want an error")
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("error leaks the value: %v", err)
	}
	if got, want := lcFields(err), []string{"config.apiKey", "config.mode", "config.n", "config.other"}; !slices.Equal(got, want) {
		t.Fatalf("fields = %v, want %v", got, want)
	}
}

func TestDefinitionJSONRoundTrip(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "lifecycle", "mediator-v8-kafka.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d Definition
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	_ = json.Unmarshal(raw, &a)
	_ = json.Unmarshal(out, &b)
	if !subsetOf(a, b) || !subsetOf(b, a) {
		t.Fatalf("round trip changed the document:\n in: %s\nout: %s", raw, out)
	}
}

func TestSemver(t *testing.T) {
	valid := []string{"0.0.0", "1.2.3", "v1.2.3", " 1.2.3 ", "1.2.3-alpha", "1.2.3-alpha.1", "1.2.3-0.3.7", "1.2.3+build.1", "1.2.3-rc.1+b"}
	for _, s := range valid {
		if _, ok := parseSemver(s); !ok {
			t.Errorf("parseSemver(%q) not ok", s)
		}
	}
	invalid := []string{"", "1", "1.2", "1.2.3.4", "01.2.3", "1.02.3", "1.2.3-", "1.2.3-01", "1.2.3+", "a.b.c", "1.2.3-al_pha", "=1.2.3x"}
	for _, s := range invalid {
		if _, ok := parseSemver(s); ok {
			t.Errorf("parseSemver(%q) ok, want invalid", s)
		}
	}
	order := []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
		"1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0", "10.0.0"}
	for i := range order {
		for j := range order {
			got, ok := compareVersions(order[i], order[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if !ok || got != want {
				t.Errorf("compareVersions(%q, %q) = %d, %v; want %d", order[i], order[j], got, ok, want)
			}
		}
	}
	if c, ok := compareVersions("1.0.0+a", "1.0.0+b"); !ok || c != 0 {
		t.Errorf("build metadata must not affect precedence: %d %v", c, ok)
	}
}

func FuzzDefinitionValidate(f *testing.F) {
	for _, name := range []string{"mediator-v7.json", "mediator-v8-kafka.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", "lifecycle", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, 7)
		f.Add(b, 8)
	}
	f.Add([]byte(`{"urn":"x","version":"1.0.0-rc.01","configDefs":[{"param":"s","type":"struct","template":[{"type":"struct"}]}],"config":{"s":[]}}`), 0)
	f.Fuzz(func(t *testing.T, b []byte, core int) {
		var d Definition
		if json.Unmarshal(b, &d) != nil {
			return
		}
		err := d.Validate(core)
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("validation error does not match ErrInvalid: %v", err)
		}
		if err == nil {
			if _, ok := parseSemver(d.Version); !ok || d.URN == "" || len(d.Endpoints) == 0 {
				t.Fatalf("accepted an invalid definition: %+v", d)
			}
		}
	})
}

// TestValidateReasons checks that refusals a user can act on say why.
func TestValidateReasons(t *testing.T) {
	d := lcLoadDefinition(t, "mediator-v7.json")
	d.DefaultChannelConfig[0].Methods = nil
	err := d.Validate(8)
	if err == nil || !strings.Contains(err.Error(), "routes no request to a channel without methods and answers 404") {
		t.Errorf("err = %v; want the reason", err)
	}

	d = lcLoadDefinition(t, "mediator-v7.json")
	d.DefaultChannelConfig[0].Type = "polling"
	err = d.Validate(8)
	if err == nil || !strings.Contains(err.Error(), "every core worker fails on its next start") {
		t.Errorf("err = %v; want the reason", err)
	}
}

// TestValidateOneLine: several problems are reported on one line (a log
// line stays one line), and each is still a *ValidationError.
func TestValidateOneLine(t *testing.T) {
	d := Definition{}
	err := d.Validate(8)
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "; ") {
		t.Fatalf("err = %q; want several problems on one line", err)
	}
	if got := lcFields(err); len(got) < 3 {
		t.Fatalf("fields = %v; want urn, version, name and more", got)
	}
}

func TestDefinitionWithCredentials(t *testing.T) {
	route := Route{Name: "M", Type: "http", Host: "mediator", Port: 8601, Primary: true}
	kafka := Route{Name: "K", Type: "kafka", KafkaTopic: "t"}
	own := Route{Name: "Own", Host: "other", Port: 1, Username: "someone", Password: "theirs"}
	// Another service the channel also routes to (an audit sink): core
	// would send it the mediator's credentials, over plain HTTP.
	audit := Route{Name: "Audit", Type: "http", Host: "audit", Port: 8601}
	otherPort := Route{Name: "Other port", Type: "http", Host: "MEDIATOR", Port: 9000}
	sameHost := Route{Name: "Same, other case", Type: "http", Host: "Mediator", Port: 8601}
	d := Definition{URN: "urn:x", Endpoints: []Route{route},
		DefaultChannelConfig: []Channel{{Name: "C", Routes: []Route{route, kafka, own, audit, otherPort, sameHost}}}}

	got := d.WithCredentials("route-user", "route-pass")
	assert.Equal(t, "route-user", got.Endpoints[0].Username)
	assert.Equal(t, "route-pass", got.Endpoints[0].Password)
	assert.Equal(t, "route-user", got.DefaultChannelConfig[0].Routes[0].Username)
	assert.Empty(t, got.DefaultChannelConfig[0].Routes[1].Username, "a kafka route sends no HTTP credentials")
	assert.Equal(t, "someone", got.DefaultChannelConfig[0].Routes[2].Username, "a route's own credentials are kept")
	assert.Empty(t, got.DefaultChannelConfig[0].Routes[3].Username, "a route to another host gets no credentials")
	assert.Empty(t, got.DefaultChannelConfig[0].Routes[4].Username, "nor one to another port")
	assert.Equal(t, "route-user", got.DefaultChannelConfig[0].Routes[5].Username, "host names are case-insensitive")
	assert.Empty(t, d.Endpoints[0].Username, "the original is not modified")
	assert.Empty(t, d.DefaultChannelConfig[0].Routes[0].Username, "the original is not modified")

	// The import document carries the password core must send.
	b, err := json.Marshal(MetadataFor(got))
	require.NoError(t, err)
	assert.Contains(t, string(b), `"password":"route-pass"`)

	assert.Equal(t, d, d.WithCredentials("", ""), "no basic credentials: unchanged")
}
